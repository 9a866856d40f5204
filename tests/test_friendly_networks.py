"""The networks of Table 3.1: shapes, registry, GMR double back-propagation, Batch Renorm."""
import chainer
import chainer.functions as F
import numpy as np
import pytest

from friendly.defaults import NETWORKS, PROTOCOL
from friendly.networks import build_network
from friendly.objective import Objective, input_gradient_norm, squared_distance
from runkit.cli import UserError
from runkit.renorm import RenormSchedule

X = np.random.RandomState(0).randint(0, 256, (6, 1, 28, 28)).astype(np.float32)
T = np.arange(6, dtype=np.int32) % 10


@pytest.mark.parametrize('name', list(NETWORKS))
def test_output_shape(name):
    net = build_network(name)
    y = net(X, 'train')
    assert y.shape == (6, 10) and y.dtype == np.float32 and np.all(np.isfinite(y.array))


@pytest.mark.parametrize('mode', ['batch', 'running'])
@pytest.mark.parametrize('name', [n for n in NETWORKS if n != 'PD'])
def test_logits_are_what_the_output_activation_is_applied_to(name, mode):
    np.random.seed(3)   # Chainer's initialisers draw from numpy's generator
    net = build_network(name)
    rng = np.random.RandomState(1)
    for link in net.batch_renorm_links():   # running averages unlike any batch's statistics
        link.avg_mean[...] = rng.uniform(-1, 1, link.avg_mean.shape)
    for param in net.params():
        if param.name == 's':                # Elastic Sigmoid scales other than their start
            param.array[...] = rng.uniform(0.5, 3, param.shape)
    with chainer.using_config('train', False):
        z, y = net.logits(X, mode)
        assert np.array_equal(y.array, net(X, mode).array)
        h = z / net.elastic_scales()[-1] if net.elastic_scales() else z   # Elastic: z = s h
        np.testing.assert_allclose(net.activations[-1](h).array, y.array, rtol=0, atol=1e-6)
    assert np.array_equal(z.array.argmax(axis=1), y.array.argmax(axis=1))


def test_grouped_batch_statistics_are_each_groups_own():
    """'batch' mode with a group: each run of `group` rows normalised as a batch of its own (the
    rows left over too), the same with and without a graph."""
    net = build_network('RS')
    x = np.random.RandomState(2).randint(0, 256, (14, 1, 28, 28)).astype(np.float32)
    z, y = net.logits(x, 'batch', group=4)
    alone = np.concatenate([net(x[i:i + 4], 'batch').array for i in range(0, 14, 4)])
    np.testing.assert_allclose(y.array, alone, atol=1e-4)
    with chainer.no_backprop_mode():
        z_arrays, _ = net.logits(x, 'batch', group=4)
    np.testing.assert_allclose(z_arrays.array, z.array, rtol=1e-4, atol=1e-4)
    assert np.abs(y.array - net(x, 'batch').array).max() > 1e-3   # not the whole batch's


def test_layers_follow_table():
    assert len(build_network('S').layers) == 3
    assert build_network('S').batch_renorms is None and len(build_network('RS').batch_renorms) == 3
    assert build_network('A').layers[0].W.shape == (100, 784)
    assert len(list(build_network('GMRES').activations)) == 3  # one scale per layer
    with pytest.raises(UserError, match='unknown network'):
        build_network('XYZ')


def test_squared_distance():
    y = np.full((2, 10), 0.5, np.float32)
    t = np.array([1, 2], np.int32)
    assert float(squared_distance(y, t).array) == pytest.approx(0.25 * 9 + 0.25)


def test_gmr_penalty_backpropagates_to_weights():
    net = build_network('GMR')
    x = chainer.Variable(X)
    loss = squared_distance(net(x, 'train'), T)
    penalty = input_gradient_norm(loss, x)
    assert float(penalty.array) > 0
    net.cleargrads()
    penalty.backward()
    assert np.abs(net.layers[0].W.grad).sum() > 0  # second derivative reached the weights


def test_gmr_penalty_finite_at_zero_gradient():
    # a saturated sigmoid: its input gradient is exactly 0 in float32
    w = chainer.Variable(np.ones((1,), np.float32))
    x = chainer.Variable(np.full((2, 3), 100, np.float32))
    loss = F.sum(F.sigmoid(x * F.broadcast_to(w, x.shape)))
    penalty = input_gradient_norm(loss, x)
    penalty.backward()
    assert float(penalty.array) < 1e-9 and np.all(np.isfinite(w.grad))


def test_objective_reports_penalty_when_training():
    objective = Objective(build_network('GMRES'), 0.5)
    reporter = chainer.Reporter()
    reporter.add_observer('main', objective)
    observation = {}
    with reporter.scope(observation):
        total = objective(X, T)
    assert 'main/gmr_penalty' in observation
    assert [float(observation['main/elastic_scale_%d' % k]) for k in (1, 2, 3)] == [1.0] * 3
    assert float(total.array) > float(observation['main/loss'].array)


def _stats(net):
    return [l.avg_mean.copy() for l in net.batch_renorm_links()]


def test_batch_mode_uses_batch_statistics_without_updating_them():
    net = build_network('RS')
    before = _stats(net)
    net(X, 'batch')
    assert all(np.array_equal(a, b) for a, b in zip(before, _stats(net)))
    y_batch = net(X, 'batch').array
    y_running = net(X, 'running').array
    assert not np.allclose(y_batch, y_running)
    net(X, 'train')
    assert not all(np.array_equal(a, b) for a, b in zip(before, _stats(net)))


class _FakeTrainer:
    def __init__(self, epoch, loss):
        self.updater = type('U', (), {'epoch': epoch})()
        self.observation = {'main/loss': np.float32(loss)}


def test_renorm_schedule_steps_every_twenty_epochs(tmp_path):
    net = build_network('RS')
    schedule = RenormSchedule(net.batch_renorm_links(), PROTOCOL['batch_renorm_loss_threshold'],
                              PROTOCOL['batch_renorm_steps'], PROTOCOL['batch_renorm_step_epochs'])
    seen = {}
    for epoch in range(1, 100):
        schedule(_FakeTrainer(epoch, 0.5 if epoch < 5 else 0.005))
        seen[epoch] = net.batch_renorm_links()[0].rmax
    assert seen[4] == 1 and seen[5] == 1.1 and seen[24] == 1.1
    assert seen[25] == 10 and seen[45] == 100 and seen[65] == 1000 and seen[99] == 1000
    assert net.batch_renorm_links()[2].dmax == 1000
    # rmax/dmax travel with the model file
    chainer.serializers.save_npz(str(tmp_path / 'm.npz'), net)
    fresh = build_network('RS')
    chainer.serializers.load_npz(str(tmp_path / 'm.npz'), fresh)
    assert fresh.batch_renorm_links()[1].rmax == 1000
