"""The CUDA sigmoid (friendly/functions/cuda_sigmoid.py): Chainer's own GPU kernel body built for
the CPU gives the same numbers, they differ from Chainer's CPU sigmoid only where that one is exactly 0,
gradients, and the FGSM that the CPU's zeros stop."""
import inspect
import os
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
from friendly.functions.cuda_sigmoid import CudaSigmoid, cuda_sigmoid, with_cuda_sigmoid
from friendly.functions.elastic_sigmoid import ElasticSigmoidLink
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
    """On a GPU, cuda_sigmoid is Chainer's own kernel. Its numpy emulation agrees up to the last
    bits of the float64 tanh, which CUDA and the host's math library each get within a few
    units in the last place (ulp): near y = 0, y = tanh(x/2)/2 + 1/2 is the difference of two
    doubles near 1, so those bits become y's own, in steps of 2^-54 (x from about -17 to -38).
    Allowed: 4 ulps of tanh near -1 (4 * 2^-53 / 2 in y) plus float32's rounding of y."""
    import cupy
    x = cupy.asarray(X.astype(np.float32))
    gpu = cupy.asnumpy(F.sigmoid(x).array)
    assert np.array_equal(gpu, cupy.asnumpy(cuda_sigmoid(x).array))
    emulated = cuda_sigmoid(X.astype(np.float32)).array
    bound = 4 * 2.0 ** -54 + np.spacing(np.maximum(gpu, 1e-45))
    assert np.all(np.abs(gpu.astype(np.float64) - emulated) <= bound)
    assert np.array_equal(gpu[np.abs(X) < 8], emulated[np.abs(X) < 8])


# The arithmetic switch (train.py / evaluate.py --arithmetic cuda): plain and Elastic Sigmoid,
# forward, backward and double backward, as Chainer's CUDA kernels compute them.

def chainer_gpu_backward_body():
    source = inspect.getsource(chainer.functions.activation.sigmoid.SigmoidGrad.forward_gpu)
    return re.search(r"'(gx = [^']*)'", source).group(1)


@pytest.mark.skipif(shutil.which('g++') is None, reason='g++ is not installed')
def test_chainer_gpu_backward_body_built_for_the_cpu_gives_the_cuda_sigmoid_gradient(tmp_path):
    assert chainer_gpu_backward_body() == 'gx = gy * y * (1 - y)'
    rng = np.random.RandomState(0)
    x = chainer.Variable(X.astype(np.float32))
    gy = rng.randn(len(X)).astype(np.float32)
    y = cuda_sigmoid(x)
    gx, = chainer.grad([y], [x], grad_outputs=[chainer.Variable(gy)])
    on_gpu = run_body(('T y, T gy', 'T gx', chainer_gpu_backward_body() + ';'), [y.array, gy],
                      np.float32, tmp_path)
    assert np.array_equal(on_gpu, gx.array)          # bitwise
    assert np.all(gx.array[(X > -36) & (X < 15) & (gy != 0)] != 0)


@pytest.mark.skipif(shutil.which('g++') is None, reason='g++ is not installed')
def test_elastic_sigmoid_in_cuda_arithmetic_is_the_gpu_kernel_of_the_float32_product(tmp_path):
    x = X.astype(np.float32)
    link = ElasticSigmoidLink(initial_scale=0.7, arithmetic='cuda')
    ours = link(x).array
    z = x * np.float32(0.7)                           # the original's scale * x, in float32
    assert np.array_equal(ours, cuda_sigmoid(z).array)   # bitwise: the same two operations
    on_gpu = run_body(('T x', 'T y', chainer_gpu_body() + ';'), [z], np.float32, tmp_path)
    np.testing.assert_allclose(on_gpu, ours, rtol=1e-5, atol=1e-12)   # libm's tanh vs numpy's
    body = z > -12   # bitwise where 1 + tanh(z/2) does not cancel
    assert np.array_equal(on_gpu[body], ours[body])
    device = ElasticSigmoidLink(initial_scale=0.7)(x).array
    assert np.all(device[x < -30] == 0) and np.all(ours[(x < -30) & (x > -50)] > 0)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_elastic_sigmoid_in_cuda_arithmetic_gradients(dtype):
    rng = np.random.RandomState(1)
    x, s = rng.randn(4, 5) * 3, np.array([0.8])
    gy, ggx, ggs = rng.randn(4, 5), rng.randn(4, 5), rng.randn(1)

    def f(v, scale):   # the original's F.sigmoid(scale * x), in the CUDA arithmetic
        return cuda_sigmoid(v * F.broadcast_to(scale, v.shape))

    tolerance = {'atol': 1e-3, 'rtol': 1e-3} if dtype == np.float32 else {}
    args = (x.astype(dtype), s.astype(dtype))
    gradient_check.check_backward(f, args, gy.astype(dtype), dtype=np.float64, **tolerance)
    gradient_check.check_double_backward(f, args, gy.astype(dtype),
                                         (ggx.astype(dtype), ggs.astype(dtype)),
                                         dtype=np.float64, **tolerance)
    # the link computes exactly this composition
    link = ElasticSigmoidLink(initial_scale=0.8, arithmetic='cuda')
    link.s.array[...] = s.astype(np.float32)
    v = x.astype(np.float32)
    assert np.array_equal(link(v).array, f(v, s.astype(np.float32)).array)


def test_arithmetic_switch_reaches_every_sigmoid_and_is_recorded(tmp_path, mnist_folder):
    from friendly import training, weights
    cuda = build_network('GMRES', 'cuda')
    assert [a.arithmetic for a in cuda.activations] == ['cuda'] * 3
    assert build_network('S', 'cuda').activations == [cuda_sigmoid] * 3
    assert build_network('S').activations == [F.sigmoid] * 3          # the default is unchanged
    with pytest.raises(Exception, match="unknown arithmetic 'gpu'"):
        build_network('S', 'gpu')
    default, switched = training.settings_for('GMRES'), training.settings_for(
        'GMRES', arithmetic='cuda')
    assert 'arithmetic' not in default and default['protocol'] == 'thesis'
    assert switched['arithmetic'] == 'cuda' and switched['protocol'] == 'thesis-cuda'
    assert weights.run_folder(switched).endswith(os.path.join('thesis-cuda', 'GMRES'))
    settings = training.settings_for('GMRES', epochs=1, train_subset=200, arithmetic='cuda')
    run = str(tmp_path / 'run')
    record = training.train(settings, run, progress=False, mnist_dir=mnist_folder)
    entry = weights.export(run, record, str(tmp_path / 'store'))
    assert entry['arithmetic'] == 'cuda' and entry['protocol'] == 'thesis-e1-n200-cuda'
    net = weights.load_committed(entry, store=str(tmp_path / 'store'))
    assert [a.arithmetic for a in net.activations] == ['cuda'] * 3
    # in the negative tail the device's sigmoid is 0 and the CUDA one is not
    device_twin = build_network('GMRES')
    device_twin.copyparams(net)
    tail = np.full((2, 100), -30 / float(net.activations[0].s.array[0]), np.float32)
    assert np.all(net.activations[0](tail).array > 0)
    assert np.all(device_twin.activations[0](tail).array == 0)


def _log(scales, accuracy):
    return [{'epoch': k + 1, 'main/elastic_scale_1': s, 'main/accuracy': a}
            for k, (s, a) in enumerate(zip(scales, accuracy))]


def test_arithmetic_split_finds_where_the_layer_1_scale_paths_part(tmp_path, monkeypatch):
    from friendly import arithmetic_split
    monkeypatch.setenv('LENSES_RUNS', str(tmp_path))
    device = _log([1.0, 0.9, 0.5, 2.2, 2.2], [0.7, 0.9, 0.93, 0.6, 0.3])
    cuda = _log([1.0, 0.905, 0.7, 0.6, 0.5], [0.7, 0.9, 0.93, 0.94, 0.95])
    assert arithmetic_split.split_epoch(device, cuda) == 3      # 0.005 apart is no split
    assert arithmetic_split.split_epoch(device, device) is None
    result = arithmetic_split.compare({5: {'device': device, 'cuda': cuda}})
    assert result[5]['collapse']['device']['collapsed'] and \
        not result[5]['collapse']['cuda']['collapsed']
    text = arithmetic_split.markdown(result, {5: {'device': device, 'cuda': cuda}},
                                     {'command': 'c', 'commit': 'x', 'device': 'd', 'date': 't'})
    assert '| 5 | 3 | 4 / never | 5, 93.0 % -> 30.0 %, **yes** (4) | 5, 95.0 % -> 95.0 %, no |' \
        in text
    assert arithmetic_split.collapse_epoch(cuda) is None
    with pytest.raises(Exception, match='no finished GMRES seed 9 run in the cuda arithmetic'):
        arithmetic_split.log_of(9, 'cuda', [str(tmp_path)])
