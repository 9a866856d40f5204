"""Pairwise Difference on the CPU: the lean FunctionNode against the composed reference."""
import tracemalloc

import numpy
import pytest

import chainer
import chainer.functions as F
from chainer import gradient_check

import pd_reference as ref
from friendly.functions import pairwise_difference as pd_module
from friendly.functions.pairwise_difference import PairwiseDifference, pairwise_difference

# (batch, channels, height, width, ksize, stride, pad, outputs)
SHAPES = [
    (2, 3, 7, 6, 3, 2, 1, 4),   # conv-like, three channels, non-square image
    (2, 2, 5, 5, 3, 1, 0, 3),   # conv-like, two channels
    (3, 1, 8, 8, 8, 1, 0, 5),   # FC: one patch covers the image
    (2, 2, 4, 4, 4, 3, 0, 3),   # FC with two channels (rows are reshapes of x, no im2col)
    (2, 1, 4, 4, 4, 1, 1, 3),   # patch as large as the image, but padded: 3x3 positions
]


def _data(shape, dtype, seed=0):
    batch, c, h, w, ksize, stride, pad, out = shape
    rng = numpy.random.default_rng(seed)
    p = c * ksize * ksize
    x = rng.normal(0, 2, (batch, c, h, w)).astype(dtype)
    W = rng.uniform(-1, 1, (out, p * p)).astype(dtype)
    return x, W


def _forward_backward(x, W, shape, impl, gy=None):
    ksize, stride, pad = shape[4:7]
    xv, Wv = chainer.Variable(x.copy()), chainer.Variable(W.copy())
    y = pairwise_difference(xv, Wv, ksize, stride, pad, impl=impl)
    if gy is None:
        gy = numpy.random.default_rng(1).normal(size=y.shape).astype(x.dtype)
    y.grad = gy
    y.backward()
    return y.array, xv.grad, Wv.grad, gy


@pytest.mark.parametrize('chunk_bytes', [None, 2048], ids=['one-chunk', 'many-chunks'])
@pytest.mark.parametrize('dtype', [numpy.float64, numpy.float32])
@pytest.mark.parametrize('shape', SHAPES)
def test_lean_matches_naive(shape, dtype, chunk_bytes, monkeypatch):
    if chunk_bytes is not None:
        monkeypatch.setattr(pd_module, 'CPU_CHUNK_BYTES', chunk_bytes)
    x, W = _data(shape, dtype)
    y_lean, gx_lean, gW_lean, gy = _forward_backward(x, W, shape, 'lean')
    y_naive, gx_naive, gW_naive, _ = _forward_backward(x, W, shape, 'naive', gy)
    batch, c, h, w, ksize, stride, pad, out = shape
    out_h = (h + 2 * pad - ksize) // stride + 1
    out_w = (w + 2 * pad - ksize) // stride + 1
    assert y_lean.shape == (batch, out, out_h, out_w)
    assert y_lean.dtype == gx_lean.dtype == gW_lean.dtype == dtype
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == numpy.float64 else dict(rtol=1e-4, atol=1e-4)
    numpy.testing.assert_allclose(y_lean, y_naive, **tol)
    numpy.testing.assert_allclose(gx_lean, gx_naive, **tol)
    numpy.testing.assert_allclose(gW_lean, gW_naive, **tol)


def test_forward_matches_definition():
    # straight from the formula, with the im2col element order spelled out
    shape = (1, 2, 3, 3, 2, 1, 0, 2)
    x, W = _data(shape, numpy.float64)
    y = pairwise_difference(x, W, 2).array
    for r in range(2):
        for c in range(2):
            v = x[0, :, r:r + 2, c:c + 2].reshape(-1)  # channel, then row, then column
            s = 1 / (1 + numpy.exp(-(v[:, None] - v[None, :])))
            numpy.testing.assert_allclose(y[0, :, r, c], W @ s.reshape(-1), rtol=1e-12)


def test_numpy_reference_matches_chainer_composition():
    # tests/pd_reference.py, which the kernels are checked against, against PD on patch rows
    # written with plain Chainer functions (differences, sigmoid, matmul) and their autograd
    rng = numpy.random.default_rng(7)
    n, p, o = 3, 5, 4
    v = chainer.Variable(rng.normal(0, 2, (n, p)))
    w = chainer.Variable(rng.uniform(-1, 1, (o, p * p)))
    gy = rng.normal(0, 1, (n, o))
    d = F.broadcast_to(F.expand_dims(v, 2), (n, p, p)) - F.broadcast_to(F.expand_dims(v, 1),
                                                                         (n, p, p))
    y = F.matmul(F.reshape(F.sigmoid(d), (n, p * p)), w, transb=True)
    y.grad = gy
    y.backward()
    numpy.testing.assert_allclose(ref.forward(v.array, w.array), y.array, rtol=1e-12)
    numpy.testing.assert_allclose(ref.grad_w(v.array, gy), w.grad, rtol=1e-12)
    numpy.testing.assert_allclose(ref.grad_patches(v.array, w.array, gy), v.grad,
                                  rtol=1e-10, atol=1e-12)


def test_only_requested_gradients():
    shape = SHAPES[0]
    x, W = _data(shape, numpy.float64)
    xv = chainer.Variable(x)
    y = pairwise_difference(xv, W, *shape[4:7])  # W is a plain array: no gradient wanted
    gx, = chainer.grad([F.sum(y)], [xv])
    _, gx_naive, _, _ = _forward_backward(x, W, shape, 'naive', numpy.ones(y.shape))
    numpy.testing.assert_allclose(gx.array, gx_naive, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('impl', ['lean', 'naive'])
def test_check_backward(impl):
    rng = numpy.random.default_rng(3)
    x = rng.normal(0, 1, (2, 2, 4, 4))
    W = rng.uniform(-1, 1, (3, (2 * 3 * 3) ** 2))
    gy = rng.normal(0, 1, (2, 3, 2, 2))

    def f(x, W):
        return pairwise_difference(x, W, 3, stride=2, pad=1, impl=impl)

    gradient_check.check_backward(f, (x, W), gy, dtype=numpy.float64, atol=1e-6, rtol=1e-5)


def test_naive_double_backward():
    rng = numpy.random.default_rng(4)
    x = rng.normal(0, 1, (1, 1, 3, 3))
    W = rng.uniform(-1, 1, (2, 81))
    gy = rng.normal(0, 1, (1, 2, 1, 1))
    ggx, ggW = rng.normal(0, 1, x.shape), rng.normal(0, 1, W.shape)
    gradient_check.check_double_backward(
        lambda x, W: pairwise_difference(x, W, 3, impl='naive'), (x, W), gy, (ggx, ggW),
        dtype=numpy.float64, atol=1e-6, rtol=1e-5)


def test_lean_second_derivative_raises():
    x, W = _data(SHAPES[2], numpy.float64)
    xv = chainer.Variable(x)
    y = pairwise_difference(xv, W, 8)
    gx, = chainer.grad([F.sum(y * y)], [xv], enable_double_backprop=True)
    with pytest.raises(NotImplementedError, match='second derivatives.*impl="naive"'):
        chainer.grad([F.sum(gx * gx)], [xv])


@pytest.mark.parametrize('shape', [SHAPES[0], SHAPES[3]], ids=['conv', 'fc'])
def test_forward_leaves_inputs_alone_and_accepts_views(shape):
    x, W = _data(shape, numpy.float64)
    x_wide = numpy.repeat(x, 2, axis=3)[:, :, :, ::2]  # non-contiguous, equal to x
    x0, W0 = x_wide.copy(), W.copy()
    y = pairwise_difference(x_wide, W, *shape[4:7]).array
    numpy.testing.assert_array_equal(x_wide, x0)
    numpy.testing.assert_array_equal(W, W0)
    numpy.testing.assert_allclose(y, pairwise_difference(x, W, *shape[4:7]).array)


@pytest.mark.parametrize('make,error,match', [
    (lambda x, W: (x.astype(numpy.int32), W), TypeError, 'float32 or float64'),
    (lambda x, W: (x.astype(numpy.float16), W.astype(numpy.float16)), TypeError,
     'float32 or float64'),
    (lambda x, W: (x, W.astype(numpy.float32)), TypeError, 'dtype of x'),
    (lambda x, W: (x[0], W), ValueError, '4-D'),
    (lambda x, W: (x, W.ravel()), ValueError, '2-D'),
    (lambda x, W: (numpy.concatenate([x, x], axis=1), W), ValueError,
     'wrong number of channels'),
])
def test_bad_input(make, error, match):
    x, W = _data((2, 1, 4, 4, 3, 1, 0, 2), numpy.float64)
    x, W = make(x, W)
    with pytest.raises(error, match=match):
        pairwise_difference(x, W, 3)


def test_patch_larger_than_image():
    x, W = _data((1, 1, 4, 4, 5, 1, 0, 2), numpy.float64)
    with pytest.raises(ValueError, match='larger than the padded image'):
        pairwise_difference(x, W, 5)
    assert pairwise_difference(x, W, 5, pad=1).shape == (1, 2, 2, 2)


def test_unknown_impl():
    x, W = _data(SHAPES[2], numpy.float64)
    with pytest.raises(ValueError, match="unknown impl 'fast'; known: lean, naive"):
        pairwise_difference(x, W, 8, impl='fast')
    with pytest.raises(ValueError, match='known: lean, naive'):
        PairwiseDifference(1, 2, 3, impl='fast')


def test_bad_geometry():
    x, W = _data(SHAPES[2], numpy.float64)
    with pytest.raises(ValueError, match='stride must be an integer >= 1'):
        pairwise_difference(x, W, 8, stride=0)


def test_link():
    layer = PairwiseDifference(1, 3, 4)
    assert layer.W.shape == (3, 16 ** 2) and layer.W.dtype == numpy.float32
    assert -1 <= layer.W.array.min() and layer.W.array.max() <= 1
    assert [name for name, _ in layer.namedparams()] == ['/W']
    x = numpy.random.default_rng(5).normal(0, 1, (2, 1, 4, 4)).astype(numpy.float32)
    y = layer(x)
    assert y.shape == (2, 3, 1, 1)
    naive = PairwiseDifference(1, 3, 4, impl='naive')
    naive.W.array[...] = layer.W.array
    numpy.testing.assert_allclose(y.array, naive(x).array, rtol=1e-5, atol=1e-4)


def test_chunked_memory_stays_bounded(monkeypatch):
    # 16 patches of P = 256: the (patches, P, P) float64 tensor is 8 MiB; the lean path may use
    # its chunk budget plus a constant (numpy's ufunc buffers, 2 x 8192 values, and small arrays)
    budget = 256 * 1024
    monkeypatch.setattr(pd_module, 'CPU_CHUNK_BYTES', budget)
    rng = numpy.random.default_rng(6)
    x = rng.normal(0, 1, (16, 1, 16, 16))
    W = rng.uniform(-1, 1, (2, 256 ** 2))
    gy = rng.normal(0, 1, (16, 2, 1, 1))
    full = 16 * 256 * 256 * 8

    tracemalloc.start()
    try:
        xv, Wv = chainer.Variable(x), chainer.Variable(W)
        y = pairwise_difference(xv, Wv, 16)
        y.grad = gy
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        y.backward()
        results = xv.grad.nbytes + Wv.grad.nbytes
        backward_extra = tracemalloc.get_traced_memory()[1] - before - results
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        pairwise_difference(x, W, 16)
        forward_extra = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    slack = 192 * 1024
    assert forward_extra < budget + slack, forward_extra
    assert backward_extra < budget + slack, backward_extra
    assert max(forward_extra, backward_extra) < full / 16
