"""The localisers of counting/localisers.py on constructed networks and maps with known answers,
and counting/localise.py end to end (on a temporary --out; results/ is never written)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import counting  # noqa: F401
import chainer
import chainer.functions as F
import chainer.links as L

from counting import localisers as loc
from counting import saliency as sal, shapes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = {'input_scale': 1.0, 'types': ['tri', 'sq'],
            'dataset': {'scale_bounds': [3, 3], 'shape_types': ['sq']}}   # one shape: 9 px
PATCHES = [(slice(1, 4), slice(1, 5)), (slice(6, 9), slice(5, 8))]   # 12 and 9 pixels


class TwoPatches(chainer.Chain):
    """Output k = softplus(sum of the pixels of patch k): two separable 'shapes', one per type."""

    def forward(self, x):
        return F.stack([F.softplus(F.sum(x[:, :, r, c], axis=(1, 2, 3))) for r, c in PATCHES],
                       axis=1)


class LinearCount(chainer.Chain):
    """count = w . x + b (no clamp): a network whose gradient is w everywhere."""

    def __init__(self, shape, sd=0.01, bias=0.5, seed=0):
        super().__init__()
        size = int(np.prod(shape))
        with self.init_scope():
            self.out = L.Linear(size, 1, initial_bias=bias, initialW=np.random.RandomState(
                seed).normal(0, sd, (1, size)).astype(np.float32))

    def forward(self, x):
        return self.out(x)


def patch_image():
    image = np.zeros((3, 10, 10), dtype=np.float32)
    image[2, 1, 1] = np.log(np.e - 1)          # each patch sums to where softplus = 1: count 2
    image[2, 6, 5] = np.log(np.e - 1) + 0.01   # patch 2 slightly more salient
    return image


def patch_mask(k, shape=(10, 10)):
    mask = np.zeros(shape, bool)
    mask[PATCHES[k]] = True
    return mask


def patch_labels():
    return patch_mask(0).astype(np.int32) + 2 * patch_mask(1).astype(np.int32)


def rng(seed=0):
    return np.random.default_rng(seed)


def test_map_with_two_separated_blobs_gives_two_sets_seeded_at_their_peaks():
    values = np.zeros((20, 20))
    values[2:6, 2:6] = 1.0
    values[3, 4] = 3.0
    values[12:15, 10:18] = 2.0
    values[0, 19] = 0.1   # below the kept top pixels
    sets = loc.map_sets(values, n=5, keep_pixels=16 + 24)
    assert len(sets) == 2
    assert sets[0]['box'] == (10, 12, 17, 14) and sets[0]['mask'].sum() == 24   # largest first
    assert sets[1]['box'] == (2, 2, 5, 5) and sets[1]['seed'] == (3, 4)
    assert [s['box'] for s in loc.map_sets(values, n=1, keep_pixels=40)] == [(10, 12, 17, 14)]
    assert loc.map_sets(values, n=0, keep_pixels=40) == []
    assert loc.map_sets(np.zeros((5, 5)), n=3, keep_pixels=10) == []   # nothing positive


def test_chance_sets_keep_their_sizes_and_are_seed_deterministic():
    sets = [loc.as_set(patch_mask(0), (1, 1)), loc.as_set(patch_mask(1), (7, 6)),
            loc.as_set(np.zeros((10, 10), bool), (0, 0))]
    moved = loc.place_at_random(sets, (10, 10), rng(3))
    assert [m['mask'].sum() for m in moved] == [12, 9, 0]
    for m, s in zip(moved[:2], sets[:2]):   # same form, shifted
        x0, y0, x1, y1 = m['box']
        a, b, c, d = s['box']
        assert (x1 - x0, y1 - y0) == (c - a, d - b)
        assert (m['mask'][y0:y1 + 1, x0:x1 + 1] == s['mask'][b:d + 1, a:c + 1]).all()
    again = loc.place_at_random(sets, (10, 10), rng(3))
    assert all((a['mask'] == b['mask']).all() and a['seed'] == b['seed']
               for a, b in zip(moved, again))
    others = [loc.place_at_random(sets, (10, 10), rng(s)) for s in range(4, 12)]
    assert any(o[0]['box'] != moved[0]['box'] for o in others)
    # through the interface: sets of the reference method, same sizes
    masks = loc.localise('chance', TwoPatches(), SETTINGS, patch_image(), rng(1), area=12)
    assert sorted(m.sum() for m in masks) == [9, 12]


def test_image_components_of_three_drawn_shapes_are_three_sets():
    drawn = [{'polygon': [[2, 2], [8, 2], [8, 8], [2, 8]]},
             {'polygon': [[20, 3], [28, 3], [20, 11]]},
             {'polygon': [[5, 20], [12, 20], [12, 27], [5, 27]]}]
    image = np.asarray(shapes.draw(drawn, 32, 32, (0, 0, 255))).transpose(2, 0, 1)
    labels = shapes.label_map(drawn, 32, 32)
    found = loc.localise_sets('image_components', None, SETTINGS, image, rng())
    assert len(found) == 3
    assert sorted(int(s['mask'].sum()) for s in found) == sorted(
        int((labels == k).sum()) for k in (1, 2, 3))
    assert all(labels[s['seed']] > 0 for s in found)
    # with a network, at most its rounded count (2.3 -> 2): the two largest
    model = LinearCount((3, 32, 32), sd=0.0, bias=2.3)
    masks = loc.localise('image_components', model, SETTINGS, image, rng())
    assert sorted(int(m.sum()) for m in masks) == sorted(
        int((labels == k).sum()) for k in (1, 2, 3))[1:]


def test_integrated_gradients_of_a_linear_network_is_gradient_times_input_minus_baseline():
    shape = (3, 6, 5)
    model = LinearCount(shape)
    image = np.random.RandomState(1).uniform(0, 255, shape).astype(np.float32)
    w = model.out.W.array.reshape(shape)
    ig = loc.integrated_gradients(model, SETTINGS, image, steps=7)
    np.testing.assert_allclose(ig, w * image, rtol=1e-5, atol=1e-6)
    # completeness: the attributions add up to count(x) - count(baseline)
    total = loc.predicted_counts(model, SETTINGS, image).sum() - \
        loc.predicted_counts(model, SETTINGS, np.zeros(shape, np.float32)).sum()
    assert ig.sum() == pytest.approx(total, rel=1e-4)
    np.testing.assert_allclose(loc.gradient_x_input(model, SETTINGS, image), w * image,
                               rtol=1e-5, atol=1e-6)


def test_smoothgrad_without_noise_is_the_saliency_and_is_seed_deterministic():
    model, image = TwoPatches(), patch_image()
    plain = loc.saliency_map(model, SETTINGS, image)
    np.testing.assert_allclose(loc.smoothgrad_map(model, SETTINGS, image, rng(), samples=3,
                                                  noise=0.0), plain, rtol=1e-6)
    graph = sal.SaliencyGraph(model, image, loc.CPU)   # the thesis's saliency, same map
    np.testing.assert_allclose(plain, graph.saliency, rtol=1e-6)
    a = loc.smoothgrad_map(model, SETTINGS, image, rng(5), samples=4, noise=0.01)
    b = loc.smoothgrad_map(model, SETTINGS, image, rng(5), samples=4, noise=0.01)
    assert (a == b).all() and not np.allclose(a, plain)


def test_attribution_maps_find_the_two_patches():
    for name in ('saliency', 'smoothgrad'):
        with np.errstate(over='ignore'):   # softplus of the noisy sums
            found = loc.localise_sets(name, TwoPatches(), SETTINGS, patch_image(), rng(),
                                      area=12)
        assert sorted(s['box'] for s in found) == [(1, 1, 4, 3), (5, 6, 7, 8)], name
    # gradient x input sees only the two non-zero pixels
    found = loc.localise_sets('gradient_x_input', TwoPatches(), SETTINGS, patch_image(), rng())
    assert sorted(s['seed'] for s in found) == [(1, 1), (6, 5)]


@pytest.mark.parametrize('name', ['thesis', 'thesis_calibrated'])
def test_second_derivative_methods_find_each_constructed_shape(name):
    found = loc.localise_sets(name, TwoPatches(), SETTINGS, patch_image(), rng(),
                              threshold=1e-6)
    assert [s['box'] for s in found] == [(5, 6, 7, 8), (1, 1, 4, 3)]   # most salient first
    masks = loc.localise(name, TwoPatches(), SETTINGS, patch_image(), rng(), threshold=1e-6)
    assert all(m.dtype == bool for m in masks) and len(masks) == 2


def test_per_type_localises_each_output_on_its_own_patch():
    found = loc.localise_sets('per_type', TwoPatches(), SETTINGS, patch_image(), rng(),
                              threshold=1e-6)
    assert [s['box'] for s in found] == [(1, 1, 4, 3), (5, 6, 7, 8)]   # type 0, then type 1


def test_capped_seeding_never_seeds_above_the_cap():
    # 79 zeros, 12 pixels of patch 1, 9 more salient of patch 2: the 0.9 quantile caps patch 2
    found = loc.localise_sets('capped_seeding', TwoPatches(), SETTINGS, patch_image(), rng(),
                              threshold=1e-6, cap_quantile=0.9)
    assert found[0]['box'] == (1, 1, 4, 3)
    assert not patch_mask(1)[found[1]['seed']] and not found[1]['mask'].any()
    # an uncapping quantile gives the thesis's order
    uncapped = loc.localise_sets('capped_seeding', TwoPatches(), SETTINGS, patch_image(), rng(),
                                 threshold=1e-6, cap_quantile=1.0)
    assert [s['box'] for s in uncapped] == [(5, 6, 7, 8), (1, 1, 4, 3)]


def test_kmeans_medium_is_the_thesis_loop_with_the_kmeans_rule():
    graph = sal.SaliencyGraph(TwoPatches(), patch_image(), loc.CPU)
    expected = sal.localise(graph.saliency, graph.importance, 2, sal.select_kmeans(('medium',)))
    found = loc.localise_sets('kmeans_medium', TwoPatches(), SETTINGS, patch_image(), rng())
    assert [s['seed'] for s in found] == [f['seed'] for f in expected]
    assert all((s['mask'] == f['mask']).all() for s, f in zip(found, expected))


def test_calibration_picks_the_best_threshold_and_needs_one():
    with pytest.raises(ValueError, match='calibrate'):
        loc.localise('thesis_calibrated', TwoPatches(), SETTINGS, patch_image(), rng())
    result = loc.calibrate('thesis_calibrated', TwoPatches(), SETTINGS, [patch_image()],
                           [patch_labels()], thresholds=[1e-6, 1.0])
    # importance is sigmoid'(1) ~ 0.2 on the patches: 1e-6 selects them, 1.0 nothing
    assert result['threshold'] == 1e-6 and result['f1'] == {'1e-06': 1.0, '1': 0.0}
    with pytest.raises(ValueError):
        loc.calibrate('saliency', TwoPatches(), SETTINGS, [], [])


def test_relu_network_has_no_second_derivative_localisation():
    class Relu(chainer.Chain):
        def forward(self, x):
            return F.relu(F.stack([F.sum(x[:, :, r, c], axis=(1, 2, 3)) for r, c in PATCHES],
                                  axis=1) * 3)
    with pytest.raises(sal.ZeroSecondDerivative):
        loc.localise('thesis', Relu(), SETTINGS, patch_image(), rng())


def test_unknown_method_is_refused():
    with pytest.raises(loc.UnknownMethod, match='choose from'):
        loc.localise('grad_cam', TwoPatches(), SETTINGS, patch_image(), rng())


def test_expected_shape_area_follows_the_sampler():
    spec = {'dataset': {'scale_bounds': [8, 14], 'shape_types': ['tri', 'sq']}}
    assert loc.expected_shape_area(spec) == pytest.approx(0.75 * np.mean(np.arange(8, 15) ** 2))


# --- counting/localise.py -------------------------------------------------------------------

def script(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, 'counting', 'localise.py')] +
                          [str(a) for a in args], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS='1'), timeout=600)


def test_localise_script_end_to_end_prints_seconds_per_method(tmp_path):
    methods = ['thesis', 'thesis_calibrated', 'saliency', 'gradient_x_input', 'chance',
               'image_components']
    proc = script('--images', 2, '--calibration-images', 1, '--extrapolation-images', 3,
                  '--bootstrap', 20, '--presets', 'small-softplus', '--methods',
                  ','.join(methods), '--out', tmp_path / 'out')
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert 'seconds per image' in out
    for name in methods:
        assert [line for line in out.splitlines() if line.split()[:1] == [name]
                and line.split()[-1].replace('.', '').isdigit()], (name, out)
    assert 'total ' in out.splitlines()[-1]
    for name in ('localisation.md', 'localisation.json', 'localisation.png',
                 'extrapolation.png'):
        assert (tmp_path / 'out' / name).exists(), name
    record = json.loads((tmp_path / 'out' / 'localisation.json').read_text())
    net = record['networks']['small-softplus']
    assert net['methods']['image_components']['metrics']['images'] == 2
    assert 'threshold' in net['calibration']['thesis_calibrated']
    assert set(net['extrapolation']) >= {'training range'}
    text = (tmp_path / 'out' / 'localisation.md').read_text()
    assert text.startswith('# Does the count localise?')
    assert 'Made by `python counting/localise.py --images 2' in text


@pytest.mark.parametrize('args,fragment', [
    (['--methods', 'thesis,grad_cam'], "unknown method 'grad_cam'"),
    (['--presets', 'small-relu'], "unknown preset 'small-relu'"),
    (['--weights', '/nonexistent/store'], 'not a folder'),
    (['--images', '0'], 'positive'),
])
def test_localise_script_bad_input_is_one_line(tmp_path, args, fragment):
    proc = script('--out', tmp_path / 'out', *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and fragment in lines[0], lines


def test_localise_script_out_is_a_file(tmp_path):
    (tmp_path / 'f').write_text('')
    proc = script('--out', tmp_path / 'f', '--images', 1)
    assert proc.returncode == 2 and 'is a file' in proc.stderr
