"""Network output shapes and Modified SoftPlus gradients (incl. double backward, float64)."""
import numpy as np
import pytest

import counting  # noqa: F401
import chainer
from chainer import gradient_check

from counting import networks
from counting.activations import ACTIVATIONS, modified_softplus
from runkit.renorm import BatchRenormalization

import gpu


def test_large_network_at_thesis_size_has_80_features():
    model = networks.build('convolutional_large', 2, 1000, 1000, 'modified_softplus', True)
    assert model.n_features == 80
    with chainer.using_config('train', False):
        y = model(np.zeros((1, 3, 1000, 1000), dtype=np.float32))
    assert y.shape == (1, 2)
    assert (y.array >= 0).all()   # ReLU-clamped counts


@pytest.mark.parametrize('size,features', [((87, 87), 10), ((212, 150), 10 * 2 * 1),
                                           ((1000, 1000), 640)])
def test_small_network_shapes(size, features):
    model = networks.build('convolutional', 1, size[0], size[1], 'sigmoid', False)
    assert model.n_features == features
    if size[0] < 500:
        assert model(np.ones((3, 3) + size, dtype=np.float32)).shape == (3, 1)


@pytest.mark.parametrize('name,size,decay', [('convolutional', 87, 0.99),
                                             ('convolutional_large', 835, 0.95)])
def test_batch_renorm_is_runkits_link_with_the_networks_decay(name, size, decay):
    model = networks.build(name, 2, size, size, 'softplus', True)
    links = model.batch_renorm_links()
    assert len(links) == len(model.layers)
    assert all(type(link) is BatchRenormalization for link in links)
    assert {link.decay for link in links} == {decay}
    assert {(link.rmax, link.dmax) for link in links} == {(1.0, 0.0)}
    assert networks.build(name, 2, size, size, 'softplus', False).batch_renorm_links() == []


def test_rmax_dmax_are_saved_with_the_model(tmp_path):
    model = networks.build('convolutional', 2, 87, 87, 'softplus', True)
    for k, link in enumerate(model.batch_renorm_links()):
        link.rmax, link.dmax = 10.0 + k, 5.0 + k
    chainer.serializers.save_npz(str(tmp_path / 'model.npz'), model)
    loaded = networks.build('convolutional', 2, 87, 87, 'softplus', True)
    chainer.serializers.load_npz(str(tmp_path / 'model.npz'), loaded)
    assert [(link.rmax, link.dmax) for link in loaded.batch_renorm_links()] == \
        [(10.0, 5.0), (11.0, 6.0), (12.0, 7.0)]


def test_batch_renorm_trains_on_the_batch_and_tests_on_running_averages():
    model = networks.build('convolutional', 2, 87, 87, 'softplus', True)
    link = model.batch_renorms[0]
    x = np.random.RandomState(0).uniform(2, 4, (6, 10, 5, 5)).astype(np.float32)
    with chainer.using_config('train', True):
        y = link(x).array   # renormalised: per channel mean 0, variance 1 over the batch
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)
    assert link.avg_mean.mean() == pytest.approx(0.01 * x.mean(), rel=1e-3)   # decay 0.99
    with chainer.using_config('train', False):
        y = link(x).array   # the running averages, left as they were
        averages = link.avg_mean.copy()
        expected = (x - link.avg_mean[None, :, None, None]) / np.sqrt(
            link.avg_var[None, :, None, None] + link.eps)
        np.testing.assert_allclose(y, expected, rtol=1e-5)
        link(x)
    np.testing.assert_array_equal(link.avg_mean, averages)


def test_large_network_rejects_small_images():
    with pytest.raises(ValueError, match='too small'):
        networks.build('convolutional_large', 2, 100, 100, 'relu', True)


def test_every_activation_builds():
    x = np.random.RandomState(0).rand(2, 3, 87, 87).astype(np.float32)
    for name in ACTIVATIONS:
        assert networks.build('convolutional', 2, 87, 87, name, True)(x).shape == (2, 2)


@pytest.mark.parametrize('base', [1.1, 2.0, np.e])
def test_modified_softplus_forward(base):
    x = np.linspace(-300, 300, 101)
    expected = np.logaddexp(0, x * np.log(base)) / np.log(base)
    y = modified_softplus(x, base).array
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-300)
    assert np.isfinite(modified_softplus(x.astype(np.float32), base).array).all()


@pytest.mark.parametrize('base', [1.1, 3.0])
def test_modified_softplus_gradients(base):
    rng = np.random.RandomState(1)
    x = rng.uniform(-8, 8, (3, 5))
    gy, ggx = rng.randn(3, 5), rng.randn(3, 5)
    f = lambda v: modified_softplus(v, base)  # noqa: E731
    gradient_check.check_backward(f, x, gy, dtype=np.float64, atol=1e-6, rtol=1e-5)
    gradient_check.check_double_backward(f, x, gy, ggx, dtype=np.float64, atol=1e-6,
                                         rtol=1e-5)


def test_modified_softplus_analytic_derivatives():
    b = 1.1
    x = np.linspace(-40, 40, 33)
    v = chainer.Variable(x)
    g, = chainer.grad([chainer.functions.sum(modified_softplus(v, b))], [v],
                      enable_double_backprop=True)
    np.testing.assert_allclose(g.array, 1 / (1 + b ** -x), rtol=1e-12)
    g2, = chainer.grad([chainer.functions.sum(g)], [v])
    np.testing.assert_allclose(g2.array, np.log(b) * b ** -x / (1 + b ** -x) ** 2, rtol=1e-10)


def test_modified_softplus_keeps_input():
    x = np.array([[-1.0, 0.0, 2.0]])
    before = x.copy()
    modified_softplus(x)
    np.testing.assert_array_equal(x, before)


def test_modified_softplus_rejects_bad_base_and_dtype():
    with pytest.raises(ValueError):
        modified_softplus(np.zeros(2), 1.0)
    with pytest.raises(chainer.utils.type_check.InvalidType):
        modified_softplus(np.zeros(2, dtype=np.int32))


@pytest.mark.skipif(not gpu.available(), reason=gpu.NEEDED)
def test_modified_softplus_kernels_match_numpy():
    import cupy
    rng = np.random.RandomState(2)
    x = rng.uniform(-50, 50, (4, 7))
    gy, ggx = rng.randn(4, 7), rng.randn(4, 7)
    for dtype in (np.float32, np.float64):
        xg = cupy.asarray(x.astype(dtype))
        np.testing.assert_allclose(cupy.asnumpy(modified_softplus(xg).array),
                                   modified_softplus(x.astype(dtype)).array, rtol=1e-5)
    f = lambda v: modified_softplus(v, 1.1)  # noqa: E731
    gradient_check.check_backward(f, cupy.asarray(x), cupy.asarray(gy), dtype=np.float64,
                                  atol=1e-6, rtol=1e-5)
    gradient_check.check_double_backward(f, cupy.asarray(x), cupy.asarray(gy),
                                         cupy.asarray(ggx), dtype=np.float64, atol=1e-6,
                                         rtol=1e-5)


def test_only_convolutional_drops_conv_biases_under_batch_renormalization():
    small = networks.build('convolutional', 2, 87, 87, 'softplus', True)
    large = networks.build('convolutional_large', 2, 835, 835, 'softplus', True)
    assert all(conv.b is None for conv in small.convs)
    assert all(conv.b is not None for conv in large.convs)
    assert all(conv.b is not None for conv in
               networks.build('convolutional', 2, 87, 87, 'softplus', False).convs)


def test_population_statistics_are_each_layers_input_statistics_over_every_batch():
    np.random.seed(0)
    model = networks.build('convolutional_small', 2, 96, 96, 'sigmoid', True)
    rng = np.random.RandomState(1)
    batches = [rng.randint(0, 256, (n, 3, 96, 96)).astype(np.float32) for n in (3, 2)]
    networks.set_population_statistics(model, lambda: iter(batches))
    x = np.concatenate(batches)
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        h0 = model.convs[0](x).array.astype(np.float64)
        h1 = model.convs[1](model.activation(model.batch_renorms[0](model.convs[0](x)))).array
    for link, h in ((model.batch_renorms[0], h0), (model.batch_renorms[1], h1)):
        np.testing.assert_allclose(link.avg_mean, h.mean(axis=(0, 2, 3)), rtol=1e-5)
        np.testing.assert_allclose(link.avg_var, h.var(axis=(0, 2, 3), ddof=1), rtol=1e-4)
