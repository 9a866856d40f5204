"""Saliency vs numerical gradients, the localisation loop on a constructed case, the metrics."""
import numpy as np
import pytest

import counting  # noqa: F401
import chainer
import chainer.functions as F

from counting import localisation_metrics as lm
from counting import networks, saliency as sal

CPU = chainer.get_device('@numpy')


def numerical_grad(f, x, index, eps=1e-4):
    up, down = x.copy(), x.copy()
    up[index] += eps
    down[index] -= eps
    return (f(up) - f(down)) / (2 * eps)


def test_saliency_and_importance_equal_numerical_derivatives():
    with chainer.using_config('dtype', np.float64):
        np.random.seed(0)
        model = networks.build('convolutional', 2, 87, 87, 'modified_softplus', False)
    model.to_device(CPU)
    image = np.random.RandomState(1).uniform(0, 255, (3, 87, 87))
    scale = 1 / 255.0
    graph = sal.SaliencyGraph(model, image, CPU, scale)

    def total(img):
        with chainer.using_config('train', False):
            return float(model(img[None] * scale).array.sum())

    def saliency_at(img, row, col):
        return float(sal.SaliencyGraph(model, img, CPU, scale).saliency[row, col])

    for row, col in [(0, 0), (10, 20), (40, 41), (86, 86)]:
        per_channel = [numerical_grad(total, image, (c, row, col), eps=1e-3) for c in range(3)]
        assert graph.saliency[row, col] == pytest.approx(np.abs(per_channel).max(), rel=1e-5,
                                                         abs=1e-12)
    seed = np.unravel_index(np.argmax(graph.saliency), graph.saliency.shape)
    importance = graph.importance(*seed)
    for row, col in [seed, (5, 5), (30, 12)]:
        per_channel = [numerical_grad(lambda im: saliency_at(im, *seed), image, (c, row, col),
                                      eps=1e-2) for c in range(3)]
        assert importance[row, col] == pytest.approx(np.abs(per_channel).max(), rel=1e-4,
                                                     abs=1e-12)


class TwoPatches(chainer.Chain):
    """Output k = activation(sum of all pixels of patch k): two separable 'shapes'."""

    def __init__(self, activation):
        super().__init__()
        self.activation = activation
        self.patches = [(slice(1, 4), slice(1, 5)), (slice(6, 9), slice(5, 8))]

    def forward(self, x):
        sums = [F.sum(x[:, :, r, c], axis=(1, 2, 3)) for r, c in self.patches]
        return F.stack([self.activation(s) for s in sums], axis=1)


def test_localisation_finds_each_constructed_shape():
    image = np.zeros((3, 10, 10), dtype=np.float32)
    image[2, 1, 1] = np.log(np.e - 1)   # patch sums where softplus = 1: total count 2
    image[2, 6, 5] = np.log(np.e - 1) + 0.01   # patch 2 slightly more salient
    graph = sal.SaliencyGraph(TwoPatches(F.softplus), image, CPU)
    assert graph.counts.sum() == pytest.approx(2.0, abs=0.01)
    found = sal.localise(graph.saliency, graph.importance, round(graph.counts.sum()),
                         sal.select_threshold(5e-10))
    assert len(found) == 2
    assert found[0]['seed'] == (6, 5)   # the most salient pixel first
    assert found[0]['box'] == (5, 6, 7, 8)
    assert found[1]['box'] == (1, 1, 4, 3)
    assert not (found[0]['mask'] & found[1]['mask']).any()

    labels = np.zeros((10, 10), dtype=np.int32)
    labels[1:4, 1:5] = 1
    labels[6:9, 5:8] = 2
    m = lm.summarise(lm.image_counts(found, labels, 2))
    assert m['pointing_game'] == 1 and m['mask_precision'] == 1 and m['mask_recall'] == 1
    assert m['box_f1_at_iou'] == 1 and m['double_hit_rate'] == 0


def test_relu_network_is_reported_not_silently_empty():
    image = np.zeros((3, 10, 10), dtype=np.float32)
    image[2, 1, 1] = image[2, 6, 5] = 1.0
    graph = sal.SaliencyGraph(TwoPatches(F.relu), image, CPU)
    assert graph.saliency.max() > 0   # first-order saliency still exists
    with pytest.raises(sal.ZeroSecondDerivative, match='zero everywhere'):
        sal.localise(graph.saliency, graph.importance, 2, sal.select_threshold(5e-10))


def seed_row(row, col):
    """Importance map selecting the seed's own row: each set takes one row of a 4x4 image."""
    importance = np.zeros((4, 4))
    importance[row] = 1
    return importance


@pytest.mark.parametrize('count,sets', [(2, 2), (2.6, 3), (1.4, 1), (0.3, 0)])
def test_localise_stops_at_rounded_count(count, sets):
    saliency = np.arange(16, dtype=float).reshape(4, 4)
    seeds = []

    def importance(row, col):
        seeds.append((row, col))
        return seed_row(row, col)

    found = sal.localise(saliency, importance, count, sal.select_threshold(0.5))
    # four rows could give four sets: the loop must stop at round(count), asking no more maps
    assert len(found) == len(seeds) == sets
    assert [f['seed'] for f in found] == [(3, 3), (2, 3), (1, 3)][:sets]
    assert [f['box'] for f in found] == [(0, 3, 3, 3), (0, 2, 3, 2), (0, 1, 3, 1)][:sets]


def test_localise_skips_assigned_pixels_and_stops_when_all_are_assigned():
    saliency = np.arange(16, dtype=float).reshape(4, 4)
    everything = lambda r, c: np.ones((4, 4))  # noqa: E731
    found = sal.localise(saliency, everything, 3, sal.select_threshold(0.5))
    assert len(found) == 1
    assert found[0]['mask'].all() and found[0]['seed'] == (3, 3)
    # a set never takes pixels of an earlier one, even when its importance selects them
    found = sal.localise(saliency, lambda r, c: np.ones((4, 4)) if r < 3 else seed_row(r, c),
                         2, sal.select_threshold(0.5))
    assert found[1]['seed'] == (2, 3) and not found[1]['mask'][3].any()
    assert found[1]['mask'][:3].all()


def test_picture_uses_tenth_root():
    values = np.array([[0.0, 1e-20, 1e-10, 1.0]])
    np.testing.assert_allclose(sal.picture(values), [[0, 2.55, 25.5, 255]], atol=0.51)
    assert sal.picture(np.zeros((2, 2))).max() == 0


def test_kmeans_groups_low_medium_high():
    values = np.concatenate([np.full(5, -9.0), np.full(5, -5.0), np.full(5, -1.0)])
    labels = sal.kmeans_1d(values + np.random.RandomState(0).randn(15) * 0.1)
    np.testing.assert_array_equal(labels, [0] * 5 + [1] * 5 + [2] * 5)


def test_greedy_match_is_one_to_one():
    iou = [[0.9, 0.8], [0.85, 0.1], [0.0, 0.0]]
    assert lm.greedy_match(iou) == [(0, 0, 0.9), (1, 1, 0.1)]
    assert lm.box_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1
    assert lm.box_iou((0, 0, 9, 9), (10, 10, 12, 12)) == 0
    assert lm.box_iou((0, 0, 1, 1), (1, 0, 2, 1)) == pytest.approx(2 / 6)
