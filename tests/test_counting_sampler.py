"""Sampler invariants: counts, containment, disjointness, determinism, rejected settings."""
import json
import os

import numpy as np
import pytest
import shapely
from PIL import Image

from counting import defaults, sample, shapes


def settings(**kw):
    s = dict(defaults.SAMPLER)
    s.update({'image_width': 64, 'image_height': 48, 'scale_bounds': (6, 12)})
    s.update(kw)
    return s


def load(folder):
    with open(os.path.join(folder, 'truths.json')) as f:
        truths = json.load(f)
    with open(os.path.join(folder, 'annotations.json')) as f:
        annotations = json.load(f)
    return truths, annotations


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('ds') / 'set')
    sample.generate(folder, 30, 6, settings(), log=False)
    return folder


def test_files_and_names(dataset):
    truths, annotations = load(dataset)
    names = sorted(n for n in os.listdir(dataset) if n.endswith('.png'))
    assert names == ['%02d.png' % i for i in range(1, 31)]
    assert sorted(truths) == names == sorted(annotations)


def test_counts_match_truths_and_limit(dataset):
    truths, annotations = load(dataset)
    for name, counts in truths.items():
        assert set(counts) == {'tri', 'sq'}
        assert sum(counts.values()) <= 6
        for kind in ('tri', 'sq'):
            assert counts[kind] == sum(a['type'] == kind for a in annotations[name])


def test_polygons_inside_and_disjoint(dataset):
    _, annotations = load(dataset)
    frame = shapely.box(0, 0, 63, 47)
    for shapes_ in annotations.values():
        polys = [shapely.Polygon(a['polygon']) for a in shapes_]
        for a, p in zip(shapes_, polys):
            assert frame.covers(p)
            assert 6 <= a['scale'] <= 12 and 0 <= a['rotation'] < 360
            assert len(a['polygon']) == (3 if a['type'] == 'tri' else 4)
        for i in range(len(polys)):
            for j in range(i + 1, len(polys)):
                assert polys[i].disjoint(polys[j])


def test_pictures_show_the_shapes(dataset):
    truths, annotations = load(dataset)
    for name in list(truths)[:10]:
        im = np.asarray(Image.open(os.path.join(dataset, name)))
        assert im.shape == (48, 64, 3)
        coloured = (im != 0).any(axis=2)
        assert coloured.any() == bool(annotations[name])
        assert set(map(tuple, im[coloured].reshape(-1, 3))) <= {(0, 0, 255)}


def test_same_seed_same_output_any_workers(tmp_path):
    a, b, c = (str(tmp_path / n) for n in 'abc')
    sample.generate(a, 12, 5, settings(seed=7, workers=1), log=False)
    sample.generate(b, 12, 5, settings(seed=7, workers=2), log=False)
    sample.generate(c, 12, 5, settings(seed=8, workers=1), log=False)
    for name in ['truths.json', 'annotations.json'] + ['%02d.png' % i for i in range(1, 13)]:
        with open(os.path.join(a, name), 'rb') as f1, open(os.path.join(b, name), 'rb') as f2:
            assert f1.read() == f2.read(), name
    assert load(a) != load(c)


def test_options(tmp_path):
    folder = str(tmp_path / 'o')
    sample.generate(folder, 15, 4, settings(shape_types=('sq',), shape_rotations=False,
                                            limit_scale_resampling=True), log=False)
    truths, annotations = load(folder)
    assert all(set(c) == {'sq'} for c in truths.values())
    for shapes_ in annotations.values():
        assert all(a['rotation'] == 0 for a in shapes_)
        assert len({a['scale'] for a in shapes_}) <= 1
    folder = str(tmp_path / 'f')
    sample.generate(folder, 10, 3, settings(shape_scaling=False), log=False)
    assert all(a['scale'] == 6 for s in load(folder)[1].values() for a in s)


def test_count_choices_uniform_pairs():
    assert shapes.count_choices(('tri', 'sq'), 2) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1),
                                                      (2, 0)]
    assert shapes.count_choices(('sq',), 3) == [(0,), (1,), (2,), (3,)]


@pytest.mark.parametrize('kw,limit', [
    ({'image_width': 100, 'image_height': 100, 'scale_bounds': (400, 400)}, 50),
    ({'image_width': 40, 'image_height': 40, 'scale_bounds': (10, 10)}, 30),
])
def test_impossible_settings_are_rejected(tmp_path, kw, limit):
    s = settings(**kw)
    s['placement_attempts'] = 200
    with pytest.raises(shapes.PlacementError):
        sample.generate(str(tmp_path / 'x'), 5, limit, s, log=False)
    assert not os.path.exists(str(tmp_path / 'x'))
    assert os.listdir(str(tmp_path)) == []   # no half-written dataset left behind
