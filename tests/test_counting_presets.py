"""The chapter-2 presets: each figure's documented configuration, and a tiny run of each."""
import json
import os

import numpy as np
import pytest

import counting  # noqa: F401
import chainer
from chainer import gradient_check

from counting import defaults, make_results, networks, training, weights
from runkit.cli import UserError

# Figures 2.3/2.4 as the thesis's figure files and code fixed them.
FIGURE_2_3 = {'network': 'convolutional_large', 'activation': 'sigmoid', 'batch_renorm': True,
              'optimizer': 'sgd', 'lr': 0.07, 'batch_size': 20, 'epochs': 100, 'lr_stages': 3,
              'input_scale': 1.0, 'batch_renorm_loss_threshold': 3.0}
SIBLINGS = {'-relu': ('relu', False, '2.5'), '-softplus': ('softplus', False, '2.6'),
            '-sigmoid-per-shape': ('sigmoid', True, '2.7')}


def test_thesis_preset_is_the_configuration_of_figures_2_3_and_2_4():
    p = defaults.TRAIN_PRESETS['thesis']
    assert {k: p[k] for k in FIGURE_2_3} == FIGURE_2_3
    d = p['dataset']
    assert (d['image_width'], d['image_height']) == (1000, 1000)
    assert d['limit_scale_resampling'] is True          # one scale per image
    assert d['scale_bounds'][0] <= 103 and d['scale_bounds'][1] >= 118   # the figures' shapes
    assert d['shape_limit'] >= 17                       # 17 shapes in the first figure image
    assert p['figure'] == '2.3, 2.4'


@pytest.mark.parametrize('family', ['thesis', 'small'])
@pytest.mark.parametrize('suffix', sorted(SIBLINGS))
def test_siblings_differ_only_in_what_their_figure_names(family, suffix):
    base, sibling = defaults.TRAIN_PRESETS[family], defaults.TRAIN_PRESETS[family + suffix]
    activation, batch_renorm, figure = SIBLINGS[suffix]
    if family == 'small':
        batch_renorm = True       # without it SGD at lr 0.07 kills the output at 96 px
    assert (sibling['activation'], sibling['batch_renorm'], sibling['figure']) == \
        (activation, batch_renorm, figure)
    assert sibling['dataset'] == dict(base['dataset'], limit_scale_resampling=False)
    same = set(base) - {'activation', 'batch_renorm', 'figure', 'dataset'}
    assert {k: sibling[k] for k in same} == {k: base[k] for k in same}


def test_small_family_is_the_thesis_recipe_scaled_down():
    small, thesis = defaults.TRAIN_PRESETS['small'], defaults.TRAIN_PRESETS['thesis']
    assert small['network'] == 'convolutional_small' and small['dataset']['image_width'] == 96
    assert networks.build('convolutional_small', 2, 96, 96, 'sigmoid', True).n_features == \
        networks.build('convolutional_large', 2, 1000, 1000, 'sigmoid', True).n_features == 80
    for key in ('activation', 'batch_renorm', 'input_scale', 'batch_size', 'optimizer', 'lr',
                'lr_stages'):
        assert small[key] == thesis[key], key
    assert (thesis['output_bias'], small['output_bias']) == ('zero', 'training_mean')
    assert defaults.DEFAULT_PRESET == 'small'


def test_unseen_pixels_match_the_thesis_figures():
    # every thesis saliency figure is zero on rows/columns 997-999 and nowhere else
    assert networks.unseen_pixels(1000, networks.CONVOLUTIONAL_LARGE_LAYERS) == [997, 998, 999]
    assert len(networks.unseen_pixels(1000, networks.CONVOLUTIONAL_LAYERS)) == 304
    assert networks.unseen_pixels(96, networks.CONVOLUTIONAL_SMALL_LAYERS) == []
    assert networks.unseen_pixels(122, networks.CONVOLUTIONAL_SMALL_LAYERS) == [119, 120, 121]


def test_small_network_refuses_sizes_it_cannot_cover():
    with pytest.raises(ValueError, match='cannot see rows 119-121 of a 122-pixel image'):
        networks.build('convolutional_small', 2, 122, 96, 'sigmoid', True)
    networks.build('convolutional_large', 2, 1000, 1000, 'sigmoid', True)   # the thesis's own


def test_box_smoothed_kernel_gives_every_stride_phase_the_same_weight():
    link = networks.BoxSmoothedConvolution2D(2, 3, pad=1)
    w = link.kernel().array
    assert w.shape == (3, 2, 4, 4)
    for axis in (2, 3):
        even = np.take(w, [0, 2], axis=axis).sum(axis=axis)
        odd = np.take(w, [1, 3], axis=axis).sum(axis=axis)
        np.testing.assert_allclose(even, odd, rtol=1e-5, atol=1e-6)
    # a constant gradient from above reaches every input pixel of the interior equally
    x = chainer.Variable(np.zeros((1, 2, 16, 16), dtype=np.float32))
    y = link(x)
    gx, = chainer.grad([chainer.functions.sum(y)], [x])
    inner = gx.array[0, :, 2:-2, 2:-2]
    np.testing.assert_allclose(inner, inner[:, :1, :1] * np.ones_like(inner), rtol=1e-5,
                               atol=1e-6)


def test_box_smoothed_convolution_gradients():
    rng = np.random.RandomState(0)
    link = networks.BoxSmoothedConvolution2D(2, 3, pad=1)
    link.v.array[...] = rng.randn(*link.v.shape)
    link.b.array[...] = rng.randn(3)
    link.to_device('@numpy')
    x = rng.randn(2, 2, 6, 6)
    gy = rng.randn(2, 3, 3, 3)
    link.v.array = link.v.array.astype(np.float64)
    link.b.array = link.b.array.astype(np.float64)
    gradient_check.check_backward(link, x, gy, (link.v, link.b), dtype=np.float64,
                                  atol=1e-6, rtol=1e-5)
    ggx = rng.randn(*x.shape)

    def f(x):
        return chainer.functions.sigmoid(link(x))
    gradient_check.check_double_backward(f, x, gy, ggx, dtype=np.float64, atol=1e-6,
                                         rtol=1e-5)


def tiny_spec(preset):
    spec = dict(defaults.TRAIN_PRESETS[preset]['dataset'], num_images=3)
    # keep the preset's size and scales, with few shapes (fast to place and to draw)
    return dict(spec, shape_limit=3)


@pytest.mark.parametrize('preset', sorted(defaults.TRAIN_PRESETS))
def test_each_preset_trains_a_few_iterations_on_tiny_data(preset, tmp_path):
    data = training.ensure_dataset(str(tmp_path / 'data'), tiny_spec(preset))
    settings = training.resolve_settings(preset, {'epochs': 1, 'batch_size': 1})
    settings['test_fraction'] = 1 / 3.
    record = training.train(settings, data, str(tmp_path / 'run'), progress=False)
    p = defaults.TRAIN_PRESETS[preset]
    assert record['finished'] and record['image_width'] == p['dataset']['image_width']
    for key in ('network', 'activation', 'batch_renorm', 'optimizer', 'lr', 'input_scale'):
        assert record[key] == p[key], key
    assert record['train_images'] == 2
    assert os.path.exists(tmp_path / 'run' / 'model.npz')


def fake_finished_run(folder, settings):
    os.makedirs(folder)
    record = dict(settings, finished=True, seconds=1.0, types=['tri', 'sq'], image_height=96,
                  image_width=96, dataset_folder='data', test_names=[],
                  provenance={'commit': 'c', 'device': 'd'})
    with open(os.path.join(folder, 'settings.json'), 'w') as f:
        json.dump(record, f)
    with open(os.path.join(folder, 'model.npz'), 'wb') as f:
        f.write(b'weights')


def test_store_is_used_verified_and_never_trained_from(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, 'STORE', str(tmp_path / 'store'))
    monkeypatch.setenv('LENSES_RUNS', str(tmp_path / 'runs'))
    with pytest.raises(UserError, match='no committed network for preset small'):
        make_results.network_folders(['small'], from_weights=True, jobs=1)
    run = str(tmp_path / 'runs' / 'counting' / 'small')
    fake_finished_run(run, training.resolve_settings('small'))
    folders = make_results.network_folders(['small'], from_weights=False, jobs=1)
    assert folders == {'small': str(tmp_path / 'store' / 'small')}
    assert make_results.network_folders(['small'], True, 1) == folders
    with open(os.path.join(folders['small'], 'model.npz'), 'ab') as f:
        f.write(b'!')
    with pytest.raises(UserError, match='does not match its SHA-256'):
        make_results.network_folders(['small'], True, 1)
