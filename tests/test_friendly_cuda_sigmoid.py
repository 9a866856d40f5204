"""The CUDA sigmoid (friendly/cuda_sigmoid.py): Chainer's own GPU kernel body built for the CPU
gives the same numbers, they differ from Chainer's CPU sigmoid only where that one is exactly 0,
gradients, and the FGSM that the CPU's zeros stop."""
import inspect
import re
import shutil

import chainer
import chainer.functions as F
import chainer.links as L
import numpy as np
import pytest
from chainer import gradient_check

import gpu
from cpp_kernels import run_body
from friendly import attacks
from friendly.cuda_sigmoid import CudaSigmoid, cuda_sigmoid, with_cuda_sigmoid
from friendly.networks import build_network

X = np.concatenate([np.linspace(-45, 45, 901), [-17.5, -20.0, -30.0, 17.5, 0.0]])


def chainer_gpu_body():
    """The elementwise body Chainer's sigmoid runs on a GPU, read from the installed Chainer."""
    source = inspect.getsource(chainer.functions.activation.sigmoid.Sigmoid.forward_gpu)
    return re.search(r"'(y = [^']*)'", source).group(1)


@pytest.mark.skipif(shutil.which('g++') is None, reason='g++ is not installed')
def test_chainer_gpu_kernel_body_built_for_the_cpu_gives_the_cuda_sigmoid(tmp_path):
    assert chainer_gpu_body() == 'y = tanh(x * 0.5) * 0.5 + 0.5'
    x = X.astype(np.float32)
    on_gpu = run_body(('T x', 'T y', chainer_gpu_body() + ';'), [x], np.float32, tmp_path)
    ours = cuda_sigmoid(x).array
    # float64 tanh rounded once; libm's and numpy's tanh may differ in the last float64 bit,
    # which 1 + tanh(x/2) magnifies in the far tail
    np.testing.assert_allclose(on_gpu, ours, rtol=1e-5, atol=1e-12)
    assert np.all(on_gpu[x > -36] > 0) and np.all(ours[x > -36] > 0)


def test_differs_from_chainer_cpu_sigmoid_only_in_the_float32_negative_tail():
    x = X.astype(np.float32)
    cpu, ours = F.sigmoid(x).array, cuda_sigmoid(x).array
    exact = (1 / (1 + np.exp(-X))).astype(np.float32)   # float64 logistic, rounded once
    body = x > -15
    np.testing.assert_allclose(ours[body], exact[body], rtol=1e-6, atol=0)
    assert np.abs(cpu - ours).max() <= 6e-8   # float32 tanh vs one rounding: tiny, absolutely
    tail = (x <= -20) & (x > -36)
    assert np.all(cpu[tail] == 0) and np.all(ours[tail] > 0)
    # 1 + tanh(x/2) cancels in float64 (steps of 2^-54): a few digits survive
    near = tail & (x > -30)
    np.testing.assert_allclose(ours[near], exact[near], rtol=1e-2)
    assert cuda_sigmoid(np.float32([-20.0])).array[0] == pytest.approx(2.0611537e-09, rel=1e-6)
    assert np.array_equal(F.sigmoid(X).array, cuda_sigmoid(X).array)   # float64: the same
    assert ours.dtype == np.float32


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_cuda_sigmoid_gradients(dtype):
    rng = np.random.RandomState(0)
    x, gy, ggx = rng.randn(4, 5) * 3, rng.randn(4, 5), rng.randn(4, 5)
    tolerance = {'atol': 1e-3, 'rtol': 1e-3} if dtype == np.float32 else {}
    f = lambda v: CudaSigmoid().apply((v,))  # noqa: E731
    gradient_check.check_backward(f, x.astype(dtype), gy.astype(dtype), dtype=np.float64,
                                  **tolerance)
    gradient_check.check_double_backward(f, x.astype(dtype), gy.astype(dtype),
                                         ggx.astype(dtype), dtype=np.float64, **tolerance)


class _Saturating(chainer.Chain):
    """sigmoid(W x) with W = [[-1, 0], [0, 0]]: at x = (30, 5) output 0 is sigmoid(-30), exactly 0
    with Chainer's CPU sigmoid (derivative 0) and about 9e-14 with the CUDA sigmoid."""

    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.linear = L.Linear(2, 2, initialW=np.array([[-1, 0], [0, 0]], np.float32))
        self.activations = [F.sigmoid]

    def forward(self, x, bn_mode=None):
        return self.activations[0](self.linear(x))


def test_fgsm_moves_what_the_cpu_sigmoid_freezes():
    net, x, t = _Saturating(), np.array([[30, 5]], np.float32), np.array([0], np.int32)
    assert np.array_equal(attacks.loss_gradient(net, x, t, None), [[0, 0]])
    assert np.array_equal(attacks.fgsm(net, x, t, 77), x)
    # dL/dx_0 = 2 (y_0 - 1) y_0 (1 - y_0) (-1) > 0; x_1 has no weight, so dL/dx_1 = 0
    gpu_like = with_cuda_sigmoid(net)
    assert np.array_equal(attacks.fgsm(gpu_like, x, t, 77), [[107, 5]])
    assert net.activations == [F.sigmoid]   # the original is left as it was
    assert gpu_like.linear.W.array is net.linear.W.array   # parameters shared, not copied


def test_with_cuda_sigmoid_swaps_only_plain_sigmoids():
    s, gmres = build_network('S'), build_network('GMRES')
    assert with_cuda_sigmoid(s).activations == [cuda_sigmoid] * 3
    copy = with_cuda_sigmoid(gmres)   # Elastic Sigmoid links are kept
    assert [type(a) for a in copy.activations] == [type(a) for a in gmres.activations]
    a = build_network('A')
    assert with_cuda_sigmoid(a).activations == a.activations


@pytest.mark.skipif(not gpu.available(), reason=gpu.NEEDED)
def test_on_a_gpu_chainer_sigmoid_is_the_cuda_sigmoid():
    import cupy
    x = cupy.asarray(X.astype(np.float32))
    gpu = cupy.asnumpy(F.sigmoid(x).array)
    assert np.array_equal(gpu, cupy.asnumpy(cuda_sigmoid(x).array))
    assert np.all(np.abs(gpu - cuda_sigmoid(X.astype(np.float32)).array)
                  <= np.spacing(np.maximum(gpu, 1e-45)))
