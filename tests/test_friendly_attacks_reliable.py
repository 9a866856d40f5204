"""The attacks a reliable evaluation adds beyond the thesis (Croce & Hein 2020): targeted APGD on
a linear classifier whose minimal targeted perturbations are known, surrogate gradients on a
network whose float32 sigmoid gradient is exactly zero, the robust-only schedule against
every attack on every image, the integer-pixel contract, and budgets by name only. Constructed
networks only (no MNIST, no training): fast and deterministic."""
import os
import re
import shutil
import subprocess
import sys

import chainer
import numpy as np
import pytest

from friendly import attacks, robustness, surrogates
from friendly.defaults import APGD_T, EVALUATION, LINEAR3, Network
from friendly.functions.cuda_sigmoid import with_cuda_sigmoid
from friendly.surrogates import float64_copy
from friendly.networks import FCNet, build_network

EPSILON = 40
CPU = chainer.get_device('@numpy')
TESTS = os.path.dirname(os.path.abspath(__file__))


def _set(link, W, b):
    link.W.array[...] = W
    link.b.array[...] = b


def check_contract(adv, x, epsilon):
    assert adv.dtype == np.float32 and adv.shape == x.shape
    assert np.all(adv == np.round(adv)), 'pixels must stay integers'
    assert adv.min() >= 0 and adv.max() <= 255
    assert np.abs(adv - x).max() <= epsilon


def predicted(net, x, mode='running'):
    return attacks.predict(net, x, mode).argmax(axis=1)


# ---------------------------------------------------------------------------------------------
# A three-class linear classifier: z_k = w_k . x + b_k for k = 0, 1, 2 (the other seven
# outputs -1e4). w_0 = 0, w_1 lives on the left half of the image, w_2 on the right half, so the
# L-inf distance to each class's region is known exactly (below).

def half_direction(side, seed):
    """7x7 blocks of one sign on one half of the 28x28 image, |w| summing to 1."""
    rng = np.random.RandomState(seed)
    w = np.kron(rng.choice([-1.0, 1.0], size=(4, 4)), np.ones((7, 7)))
    w *= rng.uniform(0.5, 1.5, size=(28, 28))
    w[:, 14:] = 0 if side == 'left' else w[:, 14:]
    w[:, :14] = 0 if side == 'right' else w[:, :14]
    return (w / np.abs(w).sum()).astype(np.float32).ravel()


def three_class():
    """(net, W (3, 784), b (3,), x, t): integer images 128 + a_1 sign(w_1) + a_2 sign(w_2) +
    noise, so z_k - z_0 is about a_k pixels; the labels are the clean predictions."""
    W = np.stack([np.zeros(784, np.float32), half_direction('left', 1),
                  half_direction('right', 2)])
    b = (-128 * W.sum(axis=1)).astype(np.float32)
    net = FCNet(Network(LINEAR3, False, 'none', 0.0, 0.0, 1))
    W1 = np.zeros((100, 784), np.float32)
    W1[:3] = W
    b1 = np.zeros(100, np.float32)
    b1[:3] = b
    _set(net.layers[0], W1, b1)
    _set(net.layers[1], np.eye(100, dtype=np.float32), np.zeros(100, np.float32))
    W3 = np.zeros((10, 100), np.float32)
    W3[np.arange(3), np.arange(3)] = 1
    b3 = np.full(10, -1e4, np.float32)
    b3[:3] = 0
    _set(net.layers[2], W3, b3)
    rng = np.random.RandomState(3)
    n = 300
    a = rng.uniform(-90, 90, size=(n, 2))
    noise = rng.randint(-15, 16, size=(n, 784))
    x = 128 + a[:, :1] * np.sign(W[1]) + a[:, 1:] * np.sign(W[2]) + noise
    x = np.clip(np.round(x), 0, 255).reshape(n, 1, 28, 28).astype(np.float32)
    t = predicted(net, x).astype(np.int32)
    return net, W, b, x, t


def targeted_thresholds(W, b, x, t):
    """(n, 3): per image and class k, the smallest integer eps whose best perturbation towards
    k (every pixel eps along sign(w_k - w_t), clipped to [0, 255]) makes z_k exceed z_t; that
    perturbation maximises the linear z_k - z_t over the ball and the pixel range, so below it
    no image in the ball is classified k over t. 0 for k = t; 256 if unreachable."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    out = np.full((len(x), 3), 256)
    for k in range(3):
        direction = np.sign(W[k][None] - W[t])
        for eps in range(255, -1, -1):
            moved = np.clip(flat + eps * direction, 0, 255)
            gap = (moved * (W[k][None] - W[t])).sum(axis=1) + b[k] - b[t]
            out[gap > 0, k] = eps
        out[t == k, k] = 0
    return out


@pytest.fixture(scope='module')
def linear3():
    net, W, b, x, t = three_class()
    threshold = targeted_thresholds(W, b, x, t)
    # the classes' order by clean logit (the label first), hence apgd_t's targets
    z = attacks.predict(net, x, 'running')[:, :3]
    first = np.argsort(-z, axis=1, kind='stable')[:, 1]
    return net, x, t, threshold, first


def test_target_classes_are_the_highest_other_logits(linear3):
    net, x, t, _, first = linear3
    classes = attacks.target_classes(net, x, t, 'running', 9)
    assert classes.shape == (9, len(x))
    assert np.array_equal(classes[0], first)
    assert not (classes == t[None]).any()
    assert set(classes[:2].ravel()) <= {0, 1, 2}      # the -1e4 classes come last
    assert attacks.target_classes(net, x, t, 'running', 20).shape == (9, len(x))


@pytest.mark.parametrize('loss', ['margin_targeted', 'dlr_targeted'])
def test_targeted_apgd_breaks_exactly_where_the_target_is_within_reach(linear3, loss):
    net, x, t, threshold, first = linear3
    easiest = threshold.min(axis=1, where=threshold > 0, initial=256)
    to_first = threshold[np.arange(len(x)), first]
    # both kinds of image are there, and some only the second target class reaches
    assert 0.2 < np.mean(easiest <= EPSILON) < 0.8
    second_only = (to_first > EPSILON) & (easiest <= EPSILON)
    assert second_only.sum() >= 5
    one = attacks.apgd_t(net, x, t, EPSILON, 'running', steps=20, targets=1, loss=loss,
                         rng=np.random.RandomState(0))
    check_contract(one, x, EPSILON)
    hit = predicted(net, one) != t
    assert hit[to_first <= EPSILON].all(), 'the first target within reach is reached'
    assert not hit[easiest > EPSILON].any(), 'no image is broken beyond its distance'
    assert not hit[second_only].all(), 'one target cannot reach what only another reaches'
    every = attacks.apgd_t(net, x, t, EPSILON, 'running', steps=20, loss=loss,
                           rng=np.random.RandomState(0))
    check_contract(every, x, EPSILON)
    assert np.array_equal(predicted(net, every) != t, easiest <= EPSILON)
    # at a smaller eps, again exactly the images within reach
    adv = attacks.apgd_t(net, x, t, 10, 'running', steps=10, loss=loss,
                         rng=np.random.RandomState(0))
    check_contract(adv, x, 10)
    assert 0 < np.sum(easiest <= 10) < np.sum(easiest <= EPSILON)
    assert np.array_equal(predicted(net, adv) != t, easiest <= 10)


def run_sizes(monkeypatch):
    """The number of images each APGD run of an attack works on, recorded as it runs."""
    sizes, real = [], attacks._apgd_run
    def counting(net, x, *args, **kwargs):
        sizes.append(len(x))
        return real(net, x, *args, **kwargs)
    monkeypatch.setattr(attacks, '_apgd_run', counting)
    return sizes


def test_later_runs_attack_only_the_images_no_earlier_run_left_robust(linear3, monkeypatch):
    """AutoAttack's way: the second target class is tried on the images the first left
    correct; the result is the same worst case as trying every target on every image."""
    net, x, t, threshold, _ = linear3
    easiest = threshold.min(axis=1, where=threshold > 0, initial=256)
    one = attacks.apgd_t(net, x, t, EPSILON, 'running', steps=20, targets=1,
                         rng=np.random.RandomState(0))
    left = int(np.sum(predicted(net, one) == t))
    sizes = run_sizes(monkeypatch)
    two = attacks.apgd_t(net, x, t, EPSILON, 'running', steps=20, targets=2,
                         rng=np.random.RandomState(0))
    assert sizes == [len(x), left] and 0 < left < len(x)
    assert np.array_equal(predicted(net, two) != t, easiest <= EPSILON)
    fooled = predicted(net, one) != t                 # a fooled image keeps its first iterate
    assert np.array_equal(two[fooled], one[fooled])


def test_with_batch_statistics_every_run_sees_the_whole_batch(monkeypatch):
    """In 'batch' mode an image's output depends on its batch, so no run may shrink it."""
    net = build_network('RS')
    x = np.random.RandomState(0).randint(0, 256, (20, 1, 28, 28)).astype(np.float32)
    t = np.arange(20, dtype=np.int32) % 10
    sizes = run_sizes(monkeypatch)
    attacks.apgd_t(net, x, t, EPSILON, 'batch', steps=2, targets=3,
                   rng=np.random.RandomState(0))
    assert sizes == [20, 20, 20]


def test_targeted_losses_follow_the_formulas():
    z = chainer.Variable(np.array([[5.0, 1.0, 3.0, -2.0, 0.5],
                                   [0.0, 4.0, 2.0, 1.0, -1.0]], np.float32))
    t = np.array([0, 1], np.int32)
    target = np.array([2, 3], np.int32)
    margin = attacks.margin_targeted_loss(z, t, target).array
    np.testing.assert_allclose(margin, [3.0 - 5.0, 1.0 - 4.0])
    # -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2), pi sorting z in descending order
    dlr = attacks.dlr_targeted_loss(z, t, target).array
    np.testing.assert_allclose(dlr, [-(5 - 3) / (5 - (1 + 0.5) / 2),
                                     -(4 - 1) / (4 - (1 + 0) / 2)], rtol=1e-6)
    with pytest.raises(ValueError):
        attacks.logit_loss_gradient(build_network('S'), np.zeros((2, 1, 28, 28), np.float32),
                                    t, 'running', 'dlr_targeted')


# ---------------------------------------------------------------------------------------------
# A network whose float32 sigmoid is saturated: hidden unit 0 is sigmoid(w . x - theta) with
# w . x - theta in [-31, -25] at the clean images (within about 4 of that from any random
# start), where numpy's float32 sigmoid and its derivative are exactly 0 while the thesis GPU's
# arithmetic and float64 keep them positive. The class turns from 0 to 1 where w . x > theta,
# which the ball of radius 40 reaches (|w| sums to 1: the corner moves w . x by 40).

def saturated(depth=(25, 31), reach=1.0):
    """(net, x, t, w): w . x - theta = -reach * depth per image, depth uniform in `depth`;
    |w| sums to `reach`."""
    rng = np.random.RandomState(4)
    w = np.kron(rng.choice([-1.0, 1.0], size=(4, 4)), np.ones((7, 7))).ravel()
    w = (reach * w / np.abs(w).sum()).astype(np.float32)
    n = 60
    depth = rng.uniform(*depth, size=n)
    x = np.clip(np.round(128 - depth[:, None] * np.sign(w)[None]
                         + rng.randint(-2, 3, size=(n, 784))), 0, 255)
    x = x.reshape(n, 1, 28, 28).astype(np.float32)
    net = build_network('S')
    W1 = np.zeros((100, 784), np.float32)
    W1[0] = w
    b1 = np.zeros(100, np.float32)
    b1[0] = -128 * w.sum()
    _set(net.layers[0], W1, b1)
    W2 = np.zeros((100, 100), np.float32)
    W2[0, 0] = 20
    b2 = np.zeros(100, np.float32)
    b2[0] = -10
    _set(net.layers[1], W2, b2)
    W3 = np.zeros((10, 100), np.float32)
    W3[0, 0], W3[1, 0] = -20, 20
    b3 = np.full(10, -30, np.float32)
    b3[0], b3[1] = 10, -10
    _set(net.layers[2], W3, b3)
    return net, x, np.zeros(n, np.int32), w


@pytest.fixture(scope='module')
def flat():
    net, x, t, w = saturated()
    pre = x.reshape(len(x), -1) @ w + net.layers[0].b.array[0]
    assert (pre < -24).all() and (pre > -32).all()
    assert (predicted(net, x) == 0).all()
    return net, x, t


def test_real_gradient_is_exactly_zero_and_the_surrogates_are_not(flat):
    net, x, t = flat
    _, real, wrong = attacks.logit_loss_gradient(net, x, t, 'running')
    assert (real == 0).all() and not wrong.any()
    for surrogate in (with_cuda_sigmoid(net), float64_copy(net)):
        loss, gradient, wrong = attacks.logit_loss_gradient(net, x, t, 'running',
                                                            surrogate=surrogate)
        assert gradient.dtype == np.float32 and not wrong.any()
        assert (np.abs(gradient).reshape(len(x), -1).max(axis=1) > 0).all()
    # the copies leave the real network as it was
    assert (attacks.logit_loss_gradient(net, x, t, 'running')[1] == 0).all()
    assert net.layers[0].W.dtype == np.float32


@pytest.mark.parametrize('name', ['apgd', 'apgd_ce', 'apgd_t', 'pgd'])
def test_surrogate_gradients_break_what_the_real_gradient_cannot(flat, name):
    net, x, t = flat
    budget = {'steps': 10, 'restarts': 1} if name == 'pgd' else {'steps': 10}
    run = attacks.ATTACKS[name]
    real = run(net, x, t, EPSILON, 'running', rng=np.random.RandomState(0), **budget)
    check_contract(real, x, EPSILON)
    assert (predicted(net, real) == t).all(), 'a zero gradient goes nowhere'
    for surrogate in (with_cuda_sigmoid(net), float64_copy(net)):
        adv = run(net, x, t, EPSILON, 'running', rng=np.random.RandomState(0),
                  surrogate=surrogate, **budget)
        check_contract(adv, x, EPSILON)
        # scored on the real network, in its own float32 arithmetic
        assert (predicted(net, adv) != t).all()


def test_success_is_read_from_the_real_network_not_the_surrogate(flat):
    """A surrogate that disagrees with the network (here: the class-swapped network) steers
    the gradient only: the misclassification flag is the real network's."""
    net, x, t = flat
    liar = net.copy(mode='copy')
    liar.layers[2].W.array[:2] = liar.layers[2].W.array[[1, 0]]
    liar.layers[2].b.array[:2] = liar.layers[2].b.array[[1, 0]]
    assert (predicted(liar, x) == 1).all()
    _, _, wrong = attacks.logit_loss_gradient(net, x, t, 'running', surrogate=liar)
    assert not wrong.any()


# Deeper: hidden unit 0's argument in [-65, -55] (about 2 from any random start), below x ~ -38
# where the GPU's and float64's sigmoids are exactly 0 too; divided by a temperature of 10 it
# is about -6, where sigmoid has a gradient. |w| sums to 2: the ball of radius 40 turns it to
# about +20, and the class to 1.

@pytest.fixture(scope='module')
def deep():
    net, x, t, w = saturated(depth=(27.5, 32.5), reach=2.0)
    pre = x.reshape(len(x), -1) @ w + net.layers[0].b.array[0]
    assert (pre < -53).all() and (pre > -67).all()
    assert (predicted(net, x) == 0).all()
    return net, x, t


def test_only_tempered_sigmoids_give_a_gradient_below_the_float64_range(deep):
    net, x, t = deep
    for surrogate in (None, with_cuda_sigmoid(net, elastic=True), float64_copy(net)):
        _, gradient, _ = attacks.logit_loss_gradient(net, x, t, 'running', surrogate=surrogate)
        assert (gradient == 0).all()
    for surrogate in surrogates.make(net, 'tempered'):
        _, gradient, wrong = attacks.logit_loss_gradient(net, x, t, 'running',
                                                          surrogate=surrogate)
        assert (np.abs(gradient).reshape(len(x), -1).max(axis=1) > 0).all() and not wrong.any()
    assert net.temperature == 1 and surrogates.tempered_copy(net, 10).temperature == 10


def test_tempered_surrogates_break_what_float64_cannot_and_score_on_the_real_network(deep):
    net, x, t = deep
    options = dict(steps=10, rng=np.random.RandomState(0))
    f64 = attacks.apgd(net, x, t, EPSILON, 'running', surrogate=float64_copy(net), **options)
    assert (predicted(net, f64) == t).all()
    for name in ('apgd', 'apgd_t'):
        adv = attacks.ATTACKS[name](net, x, t, EPSILON, 'running', rng=np.random.RandomState(0),
                                    steps=10, surrogate=surrogates.make(net, 'tempered'))
        check_contract(adv, x, EPSILON)
        assert (predicted(net, adv) != t).all()
    evaluator = robustness.Evaluator(net, CPU, {'steps': 10, 'restarts': 1, 'targets': 2},
                                     chunk=200, log=lambda _: None)
    assert evaluator.correct('apgd_f64', net, 'deep', x, t, EPSILON, 'running').all()
    assert not evaluator.correct('apgd_soft', net, 'deep', x, t, EPSILON, 'running').any()
    assert not evaluator.correct('apgd_t_soft', net, 'deep', x, t, EPSILON, 'running').any()


def test_the_temperature_sweep_finds_the_temperature_that_unmasks(deep):
    from friendly.temperature_sweep import sweep
    net, x, t = deep
    rows = sweep(net, x, t, EPSILON, (1, 10), steps=10, restarts=1, targets=2)
    assert rows == [[1, 100.0, 100.0, 100.0], [10, 0.0, 0.0, 0.0]]


def test_a_tempered_copy_divides_every_hidden_sigmoid_argument_and_nothing_else():
    """Against the layers by hand: sigmoid(a / T) at the hidden layers (Elastic Sigmoid:
    sigmoid(s a / T)), the logits untouched; a network without sigmoids (A) is left as its
    float64 copy."""
    x = synthetic_images(4, 0)
    for name in ('S', 'GMRES'):
        net = random_network(name, 1, scale=0.05)
        scales = [a.s.array[0] * 1.5 ** k for k, a in enumerate(net.activations)] \
            if name == 'GMRES' else [1.0] * 3
        for a, scale in zip(net.activations if name == 'GMRES' else (), scales):
            a.s.array[0] = scale
        z, _ = surrogates.tempered_copy(net, 7.0).logits(x.astype(np.float64), 'running')
        h = x.reshape(4, -1).astype(np.float64)
        for k, layer in enumerate(net.layers):
            h = h @ layer.W.array.T.astype(np.float64) + layer.b.array
            if k < 2:
                h = 1 / (1 + np.exp(-scales[k] * h / 7.0))
        np.testing.assert_allclose(z.array, scales[2] * h, rtol=1e-9)
        assert z.dtype == np.float64
    a = build_network('A')
    copy = surrogates.tempered_copy(a, 7.0)
    assert copy.temperature == 1
    np.testing.assert_array_equal(copy.logits(x.astype(np.float64), 'running')[0].array,
                                  float64_copy(a).logits(x.astype(np.float64), 'running')[0].array)
    with pytest.raises(ValueError):
        surrogates.tempered_copy(a, 0)


def test_surrogate_column_breaks_the_saturated_network_and_scores_on_it(flat):
    net, x, t = flat
    evaluator = robustness.Evaluator(net, CPU, {'steps': 10, 'restarts': 1, 'targets': 2},
                                     chunk=200, log=lambda _: None)
    real = evaluator.correct('apgd', net, 'flat', x, t, EPSILON, 'running')
    cuda = evaluator.correct('apgd_cuda', net, 'flat', x, t, EPSILON, 'running')
    cuda_t = evaluator.correct('apgd_t_cuda', net, 'flat', x, t, EPSILON, 'running')
    assert real.all() and not cuda.any() and not cuda_t.any()
    assert robustness.COLUMNS['apgd_cuda'].surrogate == 'cuda'


# ---------------------------------------------------------------------------------------------
# The robust-only schedule: the same worst case as every attack on every image

def random_network(name, seed, scale=1.0):
    rng = np.random.RandomState(seed)
    net = build_network(name)
    for link in net.layers:
        fan_in = link.W.shape[1]
        _set(link, rng.normal(0, scale / np.sqrt(fan_in), link.W.shape),
             rng.normal(0, 0.5, link.b.shape))
    return net


def synthetic_images(n, seed):
    rng = np.random.RandomState(seed)
    base = rng.randint(0, 256, size=(4, 784))
    mix = base[rng.randint(0, 4, size=n)] * 0.7 + rng.randint(0, 77, size=(n, 784))
    return np.clip(np.round(mix), 0, 255).reshape(n, 1, 28, 28).astype(np.float32)


COLUMNS_SMALL = list(robustness.COLUMNS)
BUDGETS_SMALL = {'steps': 6, 'restarts': 2, 'targets': 2, 'target_restarts': 1, 'queries': 40}


@pytest.mark.parametrize('name, mode', [('S', 'running'), ('RS', 'running'), ('RS', 'batch')])
def test_robust_only_schedule_gives_the_worst_case_of_every_attack_on_every_image(name, mode):
    """In a child with one BLAS thread: with several, a batch's size changes the rounding of
    its products, so an image on the edge can come out otherwise when fewer images are
    attacked together (1 of 400 here with two threads). In 'batch' mode the unit left out is
    a batch of 200: the third batch, every label wrong, is never attacked."""
    one_thread = dict(os.environ, OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1',
                      MKL_NUM_THREADS='1')
    done = subprocess.run([sys.executable, '-c', 'import sys; sys.path.insert(0, %r); '
                           'import runkit.chainer_compat; '   # as conftest.py, before Chainer
                           'import test_friendly_attacks_reliable as t; '
                           't.robust_only_equals_every_image(%r, %r)' % (TESTS, name, mode)],
                          env=one_thread, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def robust_only_equals_every_image(name, mode):
    victim, source = random_network(name, 5), random_network('S', 6)
    x = synthetic_images(600, 7)
    t = predicted(victim, x, mode).astype(np.int32)
    t[::10] = (t[::10] + 1) % 10          # a few misclassified clean images too
    t[400:] = (t[400:] + 1) % 10          # and a whole batch of them
    assert robustness.schedule_of(victim, 'running') == robustness.ROBUST_ONLY
    assert robustness.schedule_of(victim, 'batch') == (
        robustness.ROBUST_ONLY if name == 'S' else robustness.ROBUST_BATCHES)
    clean = robustness.score(victim, x, t, mode)
    # tempered surrogates break every image of these saturated networks from eps 8 (from 4
    # with batch statistics)
    eps = 1 if mode == 'batch' else 4
    scheduled = robustness.Evaluator(source, CPU, BUDGETS_SMALL, chunk=200, log=lambda _: None)
    correct, schedule = robustness.run_columns(scheduled, victim, name, x, t, eps, mode,
                                               COLUMNS_SMALL, clean)
    assert schedule == robustness.schedule_of(victim, mode)
    unit = 1 if schedule == robustness.ROBUST_ONLY else robustness.EVAL_BATCH
    _, worst, broke = robustness.tabulate(correct, COLUMNS_SMALL)
    everything = robustness.Evaluator(source, CPU, BUDGETS_SMALL, chunk=200,
                                      log=lambda _: None)
    full = {'clean': clean}
    for key in COLUMNS_SMALL:
        full[key] = everything.correct(key, victim, name, x, t, eps, mode)
    _, full_worst = robustness.summarise(full, COLUMNS_SMALL)
    assert 0.1 < worst[:400].mean() < clean[:400].mean() - 0.1   # some break, some do not
    assert np.array_equal(worst, full_worst)
    # and each attack's verdict on an image it was run on is the one of the full run
    running = clean.copy()
    for key in robustness.in_order(COLUMNS_SMALL):
        attacked = attacks.whole_units(running, unit) \
            if key not in robustness.THESIS_COLUMNS else np.ones_like(running)
        assert np.array_equal(correct[key][attacked], full[key][attacked]), key
        if robustness.COLUMNS[key].on == 'victim' and key not in robustness.THESIS_COLUMNS:
            # the batch of wrong labels is never attacked (examples made on the source are
            # made for every image, as every victim is shown them)
            assert correct[key][400:].all() and not full[key][400:].any(), key
        running = running & full[key]
    assert sum(broke.values()) == int(clean.sum() - worst.sum())


def test_cache_completes_a_robust_only_result_without_recomputing(tmp_path):
    victim, source = random_network('S', 5), random_network('S', 6)
    x = synthetic_images(200, 8)
    t = predicted(victim, x).astype(np.int32)
    cache = robustness.Cache(str(tmp_path))
    evaluator = robustness.Evaluator(source, CPU, BUDGETS_SMALL, cache=cache, chunk=200,
                                     log=lambda _: None)
    half = np.arange(200) < 100
    first = evaluator.correct('apgd', victim, 'S', x, t, 20, 'running', only=half)
    assert first[~half].all() and not first[half].all()
    whole = evaluator.correct('apgd', victim, 'S', x, t, 20, 'running')
    assert np.array_equal(whole[half], first[half]) and not whole[~half].all()
    assert (cache.hits, cache.misses) == (1, 1)    # the second call read the first's back
    fresh = robustness.Evaluator(source, CPU, BUDGETS_SMALL, chunk=200, log=lambda _: None)
    assert np.array_equal(whole, fresh.correct('apgd', victim, 'S', x, t, 20, 'running'))


def test_convergence_doubles_every_budget_at_every_epsilon():
    victim, source = random_network('S', 5), random_network('S', 6)
    evaluator = robustness.Evaluator(source, CPU, BUDGETS_SMALL, chunk=200, log=lambda _: None)
    assert evaluator.budget('apgd', 2) == {'steps': 12, 'restarts': 4}
    assert evaluator.budget('apgd_t', 2) == {'steps': 12, 'restarts': 2, 'targets': 4}
    assert evaluator.budget('square', 2) == {'queries': 80}
    assert robustness.Evaluator(source, CPU, {'targets': 9}).budget('apgd_t', 2)['targets'] == 9
    x = synthetic_images(200, 9)
    t = predicted(victim, x).astype(np.int32)
    columns = ['white_box_fgsm', 'black_box_fgsm', 'apgd', 'apgd_t', 'square']
    result = robustness.evaluate_network(evaluator, victim, 'S', x, t, 'running', 20, columns,
                                         (0, 10, 20), 200)
    moves = result['convergence']['by_epsilon']
    assert [m['epsilon'] for m in moves] == [0, 10, 20] and not moves[0]['run']
    assert all(m['run'] == (m['epsilon'] > 0 and m['worst_case'] > 0) for m in moves)
    assert result['schedule'] == robustness.ROBUST_ONLY
    acc = result['accuracy']
    # cumulative columns never rise along the schedule, and end at the worst case
    chain = [acc[k] for k in ('apgd', 'apgd_t', 'square')]
    assert chain == sorted(chain, reverse=True) and chain[-1] == acc['worst_case']
    assert moves[1]['run'] and 'eps 10' in result['checks']['converged']['detail']


def test_the_convergence_check_runs_only_when_asked_and_changes_no_other_result():
    victim, source = random_network('S', 5), random_network('S', 6)
    x = synthetic_images(200, 9)
    t = predicted(victim, x).astype(np.int32)
    columns = ['white_box_fgsm', 'black_box_fgsm', 'apgd', 'square']
    results = {}
    for convergence in (False, True):
        evaluator = robustness.Evaluator(source, CPU, BUDGETS_SMALL, chunk=200,
                                         log=lambda _: None)
        results[convergence] = robustness.evaluate_network(
            evaluator, victim, 'S', x, t, 'running', 20, columns, (0, 10, 20), 200,
            convergence=convergence)
    unchecked, checked = results[False], results[True]
    assert unchecked['convergence'] is None and checked['convergence']['by_epsilon']
    assert unchecked['checks']['converged'] == {
        'ok': None, 'detail': 'not checked (robustness_eval.py --convergence checks it)'}
    assert 'convergence' not in unchecked['seconds_by_phase']
    for key in ('accuracy', 'curve', 'broken_by'):
        assert unchecked[key] == checked[key], key


def test_surrogate_columns_that_would_repeat_the_network_do_not_run():
    """A has no sigmoid: its CUDA-sigmoid surrogate would be A itself and each tempered one its
    float64 copy, so those columns are left out (said why); the float64 one runs."""
    angular = build_network('A')
    assert surrogates.changes(build_network('S'), 'cuda')
    assert surrogates.changes(build_network('GMRES'), 'tempered')
    assert not surrogates.changes(angular, 'cuda')
    assert not surrogates.changes(angular, 'tempered')
    assert surrogates.changes(angular, 'float64')
    with pytest.raises(ValueError, match='unknown surrogate'):
        surrogates.changes(angular, 'float16')
    columns = ['white_box_fgsm', 'black_box_fgsm', 'apgd', 'apgd_soft', 'apgd_cuda',
               'apgd_t_cuda', 'apgd_f64']
    run, left_out = robustness.applicable(columns, angular)
    assert run == ['white_box_fgsm', 'black_box_fgsm', 'apgd', 'apgd_f64']
    assert set(left_out) == {'apgd_soft', 'apgd_cuda', 'apgd_t_cuda'}
    assert 'the network itself' in left_out['apgd_cuda']
    assert 'float64 copy' in left_out['apgd_soft']
    assert robustness.applicable(columns, build_network('S')) == (columns, {})
    victim = angular
    x = synthetic_images(200, 9)
    t = predicted(victim, x).astype(np.int32)
    evaluator = robustness.Evaluator(random_network('S', 6), CPU, BUDGETS_SMALL, chunk=200,
                                     log=lambda _: None)
    result = robustness.evaluate_network(evaluator, victim, 'A', x, t, 'running', 20, columns,
                                         (0, 20), 200, convergence=False)
    assert result['not_applicable'] == left_out
    assert set(result['accuracy']) == {'clean', 'worst_case'} | set(run)
    assert set(result['seconds_by_column']) == set(run)


def test_the_code_digest_covers_the_custom_functions(tmp_path, monkeypatch):
    """A change to friendly/functions/ (whose arithmetic the attacks differentiate) makes
    every cached result stale."""
    from friendly.functions import cuda_sigmoid
    folder = os.path.dirname(cuda_sigmoid.__file__)
    copy = tmp_path / 'functions'
    shutil.copytree(folder, str(copy), ignore=shutil.ignore_patterns('__pycache__'))
    monkeypatch.setattr(cuda_sigmoid, '__file__', str(copy / 'cuda_sigmoid.py'))
    same = robustness.code_version()
    with open(str(copy / 'angular.py'), 'a') as f:
        f.write('\n')
    assert robustness.code_version() != same


# ---------------------------------------------------------------------------------------------
# The contract: integer pixels in [0, 255] in the eps-ball; reproducible; `only`

NEW = {'apgd_t': {'steps': 5, 'targets': 2},
       'apgd_t_margin': {'steps': 5, 'targets': 2, 'loss': 'margin_targeted'},
       'apgd_cuda': {'steps': 5}, 'apgd_f64': {'steps': 5}, 'apgd_ce_cuda': {'steps': 5},
       'apgd_t_cuda': {'steps': 5, 'targets': 2}, 'pgd_cuda': {'steps': 3, 'restarts': 1}}


def _new_attack(key, net):
    options = dict(NEW[key])
    if key.endswith('_cuda'):
        options['surrogate'] = with_cuda_sigmoid(net)
    if key.endswith('_f64'):
        options['surrogate'] = float64_copy(net)
    name = key.replace('_margin', '').replace('_cuda', '').replace('_f64', '')
    return attacks.ATTACKS[name], options


@pytest.mark.parametrize('mode', ['batch', 'running'])
@pytest.mark.parametrize('key', list(NEW))
def test_new_attacks_keep_integer_pixels_in_the_ball_and_are_reproducible(key, mode):
    net = random_network('RS', 11)
    x = synthetic_images(200, 12)
    t = predicted(net, x, mode).astype(np.int32)
    run, options = _new_attack(key, net)
    adv = run(net, x, t, 77, mode, rng=np.random.RandomState(1), **options)
    check_contract(adv, x, 77)
    again = run(net, x, t, 77, mode, rng=np.random.RandomState(1), **options)
    assert np.array_equal(adv, again)
    assert np.array_equal(run(net, x, t, 0, mode, rng=np.random.RandomState(1), **options), x)
    assert robustness.score(net, adv, t, mode).sum() < robustness.score(net, x, t, mode).sum()


@pytest.mark.parametrize('key', ['apgd_t', 'apgd_cuda', 'apgd_t_cuda'])
def test_only_attacks_the_images_it_marks(key):
    net = random_network('S', 11)
    x = synthetic_images(200, 12)
    t = predicted(net, x).astype(np.int32)
    run, options = _new_attack(key, net)
    only = np.arange(200) % 3 == 0
    adv = run(net, x, t, 20, 'running', rng=np.random.RandomState(1), only=only, **options)
    check_contract(adv, x, 20)
    assert np.array_equal(adv[~only], x[~only])
    whole = run(net, x, t, 20, 'running', rng=np.random.RandomState(1), **options)
    assert np.array_equal(predicted(net, adv)[only], predicted(net, whole)[only])
    rs = random_network('RS', 11)
    with pytest.raises(ValueError, match='whole groups of 200'):
        run(rs, x, t, 20, 'batch', rng=np.random.RandomState(1), only=only, **options)


@pytest.mark.parametrize('key', ['apgd_t', 'square'])
def test_in_batch_mode_only_attacks_whole_groups_and_leaves_the_others_alone(key):
    """In 'batch' mode `only` marks whole groups; an attacked group comes out as when every
    group is attacked (each keeps its own statistics, the random numbers are drawn for all).
    In float64: BLAS may round a float32 product of 200 rows otherwise than of 400, and an
    attack's path can turn on such a last bit (seen with NumPy 2's OpenBLAS)."""
    net = float64_copy(random_network('RS', 11))
    x = synthetic_images(400, 12).astype(np.float64)
    t = predicted(net, x, 'batch').astype(np.int32)
    only = np.arange(400) < 200
    options = {'apgd_t': {'steps': 5, 'targets': 2}, 'square': {'queries': 30}}[key]
    run = attacks.ATTACKS[key]
    adv = run(net, x, t, 20, 'batch', rng=np.random.RandomState(1), group=200, only=only,
              **options)
    assert adv.dtype == x.dtype
    check_contract(adv.astype(np.float32), x.astype(np.float32), 20)
    assert np.array_equal(adv[200:], x[200:])
    whole = run(net, x, t, 20, 'batch', rng=np.random.RandomState(1), group=200, **options)
    assert np.array_equal(adv[:200], whole[:200])
    with pytest.raises(ValueError, match='whole groups of 200'):
        run(net, x, t, 20, 'batch', rng=np.random.RandomState(1), group=200,
            only=np.arange(400) < 100, **options)


def test_square_in_batch_mode_leaves_a_fooled_group_and_the_others_come_out_the_same():
    """A group whose images are all misclassified from the start is not queried again, and
    the other group's result is the one it gets beside a group that is still attacked."""
    net = random_network('RS', 11)
    x = synthetic_images(400, 12)
    t = predicted(net, x, 'batch').astype(np.int32)
    fooled = t.copy()
    fooled[200:] = (fooled[200:] + 1) % 10          # the second group: every label wrong
    options = dict(queries=30, rng=np.random.RandomState(1), group=200)
    beside_attacked = attacks.square(net, x, t, 20, 'batch', **options)
    options['rng'] = np.random.RandomState(1)
    beside_fooled = attacks.square(net, x, fooled, 20, 'batch', **options)
    assert np.array_equal(beside_fooled[:200], beside_attacked[:200])
    assert not np.array_equal(beside_attacked[200:], x[200:])


# ---------------------------------------------------------------------------------------------
# Budgets: explicit, in friendly/defaults.py, misspellings rejected

@pytest.mark.parametrize('name', sorted(attacks.ATTACKS))
def test_a_misspelt_budget_is_a_type_error(name):
    net = build_network('S')
    x = np.zeros((2, 1, 28, 28), np.float32)
    t = np.zeros(2, np.int32)
    with pytest.raises(TypeError):
        attacks.ATTACKS[name](net, x, t, 10, 'running', stpes=3)
    with pytest.raises(TypeError):
        attacks.ATTACKS[name](net, x, t, 10, 'running', restart=3)


def test_budgets_live_in_the_defaults_and_the_evaluator_rejects_unknown_ones():
    import inspect
    assert inspect.signature(attacks.apgd_t).parameters['targets'].default == APGD_T['targets']
    assert APGD_T['targets'] == 9
    assert attacks.APGD is __import__('friendly.defaults', fromlist=['APGD']).APGD
    with pytest.raises(TypeError, match='queries'):
        attacks.apgd(build_network('S'), np.zeros((2, 1, 28, 28), np.float32),
                     np.zeros(2, np.int32), 10, 'running', queries=5)
    with pytest.raises(TypeError, match='restart'):
        robustness.Evaluator(None, CPU, {'restart': 3})
    assert robustness.Evaluator(None, CPU, {}).budgets == EVALUATION
    for key, column in robustness.COLUMNS.items():
        run = attacks.ATTACKS[column.attack]
        for name in column.budget:
            assert robustness.BUDGET_KEYWORD.get(name, name) in \
                inspect.signature(run).parameters, (key, name)


@pytest.mark.parametrize('convergence', [False, True])
def test_bench_attacks_reports_the_seconds_of_every_attack(monkeypatch, convergence):
    """The benchmark's evaluation (budgets made tiny): a row per network and mode, and every
    attack's seconds; the convergence check's only when asked for, as robustness_eval's."""
    from argparse import Namespace
    from friendly import weights
    from friendly.benchmarks import bench_attacks
    monkeypatch.setattr(robustness, 'EVALUATION', dict(BUDGETS_SMALL))
    monkeypatch.setattr(bench_attacks, 'CURVE_EPSILONS', (0, 10, 255))
    monkeypatch.setattr(weights, 'load_stored',
                        lambda *_: (random_network('S', 5), {'sha256': 'victim'}))
    checked, check = [], robustness.check_convergence
    monkeypatch.setattr(robustness, 'check_convergence',
                        lambda *a: checked.append(1) or check(*a))
    x = synthetic_images(200, 13)
    t = predicted(random_network('S', 5), x).astype(np.int32)
    lines = bench_attacks.evaluation(Namespace(networks=['S'], queries=20, store='store',
                                               protocol='thesis', convergence=convergence),
                                     CPU, random_network('S', 6), {'sha256': 'source'}, x, t)
    assert any(line.startswith('| S | both | ') for line in lines)
    assert bool(checked) == convergence
    timed = next(line for line in lines if line.startswith('- S, both: '))
    for key in robustness.COLUMNS:
        assert re.search(r'\b%s [\d.]+' % key, timed), key
    assert any('target 30 min: ratio' in line for line in lines)
    assert any(line.startswith('With `robustness_eval.py --jobs 2`') for line in lines)
    # parts in robustness_eval's order ('batch' modes, networks without Batch
    # Renormalization, then the other modes), each to the first free worker: RS batch and
    # A running on one, A batch, S and RS running on the other
    measured = {('RS', 'batch'): (100, True), ('RS', 'running'): (30, True),
                ('S', 'batch'): (50, False), ('A', 'batch'): (80, True),
                ('A', 'running'): (20, True)}
    assert bench_attacks.two_jobs_seconds(measured, ['S', 'RS', 'A']) == 150
