"""Pairwise Difference on a CUDA device: the CuPy kernels against the numpy reference, and the
Chainer function on the device. Everything skips, with the reason, where no device is usable.

The kernel tests need only numpy, cupy and pytest (friendly/functions/pd_kernels.py imports neither
Chainer nor cupy at load); the Chainer tests import Chainer inside.
"""
import numpy
import pytest

import pd_reference as ref
from friendly.functions import pd_kernels as pdk


def _cuda_problem():
    """Why CUDA cannot be used here, or None when it can."""
    try:
        import cupy
    except Exception as err:  # noqa: BLE001 - any import failure means no GPU tests
        return 'cupy is not importable (%s)' % err
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return 'no CUDA device'
        cupy.arange(2).sum().item()  # the driver can actually run a kernel
    except Exception as err:  # noqa: BLE001
        return 'no usable CUDA device (%s)' % str(err).splitlines()[0]
    return None


_PROBLEM = _cuda_problem()
pytestmark = pytest.mark.skipif(_PROBLEM is not None, reason=str(_PROBLEM))

# (patches N, patch size P, outputs O): off the tile grid, several patch/output tiles, and the
# thesis's FC layer at batch 20 and 256
CASES = [(3, 5, 3), (11, 37, 40), (40, 9, 140), (20, 784, 100), (256, 784, 100)]


def _problem(n, p, o, dtype, seed=0):
    rng = numpy.random.default_rng(seed)
    v = rng.normal(0, 2, (n, p)).astype(dtype)
    w = rng.uniform(-1, 1, (o, p * p)).astype(dtype)
    gy = rng.normal(0, 1, (n, o)).astype(dtype)
    return v, w, gy


def _reference(v, w, gy):
    # float64 on the host; the full tensor is fine up to batch 256 with P = 784 (2.5 GB)
    v, w, gy = (a.astype(numpy.float64) for a in (v, w, gy))
    if v.shape[0] > 64:  # keep host memory modest: reference in slices of patches
        parts = [_reference(v[i:i + 64], w, gy[i:i + 64]) for i in range(0, v.shape[0], 64)]
        return (numpy.concatenate([p[0] for p in parts]), sum(p[1] for p in parts),
                numpy.concatenate([p[2] for p in parts]))
    return ref.forward(v, w), ref.grad_w(v, gy), ref.grad_patches(v, w, gy)


@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('n,p,o', CASES)
def test_kernels_match_reference(n, p, o, dtype):
    import cupy
    v, w, gy = _problem(n, p, o, dtype)
    y_ref, gw_ref, gv_ref = _reference(v, w, gy)
    dv, dw, dgy = cupy.asarray(v), cupy.asarray(w), cupy.asarray(gy)
    y = cupy.asnumpy(pdk.forward(dv, dw))
    gw = cupy.asnumpy(pdk.grad_w(dv, dgy))
    gv = cupy.asnumpy(pdk.grad_patches(dv, dw, dgy))
    assert y.dtype == gw.dtype == gv.dtype == dtype
    if dtype == numpy.float64:
        tol = dict(rtol=1e-9, atol=1e-9)
    else:  # sums of up to P*P = 614,656 terms in float32
        tol = dict(rtol=1e-4, atol=1e-5 * p * p ** 0.5)
    numpy.testing.assert_allclose(y, y_ref, **tol)
    numpy.testing.assert_allclose(gw, gw_ref, **tol)
    numpy.testing.assert_allclose(gv, gv_ref, **tol)


def test_kernels_accept_views_and_check_dtypes():
    import cupy
    v, w, gy = _problem(6, 10, 7, numpy.float32)
    dv = cupy.asarray(numpy.repeat(v, 2, axis=1))[:, ::2]  # non-contiguous
    numpy.testing.assert_allclose(cupy.asnumpy(pdk.forward(dv, cupy.asarray(w))),
                                  ref.forward(v, w), rtol=1e-5, atol=1e-4)
    with pytest.raises(TypeError, match='dtype'):
        pdk.forward(cupy.asarray(v), cupy.asarray(w, dtype=numpy.float64))
    with pytest.raises(ValueError, match='columns'):
        pdk.forward(cupy.asarray(v), cupy.asarray(w)[:, :-1])


def _chainer_on_gpu():
    chainer = pytest.importorskip('chainer')
    try:
        from chainer.backends import cuda
        available = cuda.available
        from friendly.functions import pairwise_difference  # noqa: F401
    except Exception as err:  # noqa: BLE001 - a Chainer that cannot run here is a skip
        pytest.skip('Chainer is not usable here (%s: %s)' % (type(err).__name__, err))
    if not available:
        pytest.skip('Chainer cannot use CuPy here (chainer.backends.cuda.available is False)')
    return chainer


@pytest.mark.parametrize('shape', [
    (2, 3, 7, 6, 3, 2, 1, 4),   # conv-like
    (3, 1, 8, 8, 8, 1, 0, 5),   # FC
    (2, 2, 4, 4, 4, 3, 0, 3),   # FC with two channels (rows are reshapes of x, no im2col)
    (2, 1, 4, 4, 4, 1, 1, 3),   # patch as large as the image, but padded: 3x3 positions
])
def test_lean_matches_naive_on_device(shape):
    chainer = _chainer_on_gpu()
    import cupy
    from friendly.functions.pairwise_difference import pairwise_difference
    batch, c, h, w, ksize, stride, pad, out = shape
    rng = numpy.random.default_rng(1)
    x = cupy.asarray(rng.normal(0, 2, (batch, c, h, w)))
    W = cupy.asarray(rng.uniform(-1, 1, (out, (c * ksize * ksize) ** 2)))
    results = []
    for impl in ('lean', 'naive'):
        xv, Wv = chainer.Variable(x.copy()), chainer.Variable(W.copy())
        y = pairwise_difference(xv, Wv, ksize, stride, pad, impl=impl)
        y.grad = cupy.ones_like(y.array)
        y.backward()
        results.append([cupy.asnumpy(a) for a in (y.array, xv.grad, Wv.grad)])
    for lean, naive in zip(*results):
        numpy.testing.assert_allclose(lean, naive, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize('impl', ['lean', 'naive'])
def test_check_backward_on_device(impl):
    chainer = _chainer_on_gpu()
    import cupy
    from chainer import gradient_check
    from friendly.functions.pairwise_difference import pairwise_difference
    rng = numpy.random.default_rng(3)
    x = cupy.asarray(rng.normal(0, 1, (2, 2, 4, 4)))
    W = cupy.asarray(rng.uniform(-1, 1, (3, (2 * 3 * 3) ** 2)))
    gy = cupy.asarray(rng.normal(0, 1, (2, 3, 2, 2)))
    gradient_check.check_backward(
        lambda x, W: pairwise_difference(x, W, 3, stride=2, pad=1, impl=impl), (x, W), gy,
        dtype=numpy.float64, atol=1e-6, rtol=1e-5)
    assert chainer.backend.get_device_from_array(x).xp is cupy
