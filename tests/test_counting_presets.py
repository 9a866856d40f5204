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
              'input_scale': 1.0, 'batch_renorm_loss_threshold': 3.0,
              'batch_renorm_test_statistics': 'running'}
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
    expected = dict(base['dataset'], limit_scale_resampling=False)
    if family == 'thesis':    # the smaller, more numerous shapes of Figures 2.5-2.7
        expected.update(scale_bounds=[30, 60], shape_limit=40)
    assert sibling['dataset'] == expected
    same = set(base) - {'activation', 'batch_renorm', 'figure', 'dataset'}
    if family == 'small' and activation != 'sigmoid':
        same.remove('epochs')     # the sigmoid analogues train 30 epochs, ReLU and SoftPlus 20
        assert (base['epochs'], sibling['epochs']) == (30, 20)
    if family == 'small' and suffix in ('-softplus', '-sigmoid-per-shape'):
        same.remove('lr')         # lr 0.07 kills the SoftPlus output, underfits sigmoid 2.7
        assert sibling['lr'] == 0.02
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
    assert small['batch_renorm_test_statistics'] == 'population'
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


def test_box_smoothing_removes_the_stride_grid_of_an_untrained_network():
    from counting import chapter2
    control = chapter2.stride_grid_control(images=2)
    assert control['period'] == 2
    assert control['plain strides']['median'] > 3
    assert control['box-smoothed strides']['median'] < 1.5


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
    with open(os.path.join(folder, 'log'), 'w') as f:
        f.write('[]')


def test_store_is_used_verified_and_never_trained_from(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, 'STORE', str(tmp_path / 'store'))
    monkeypatch.setenv('LENSES_RUNS', str(tmp_path / 'runs'))
    with pytest.raises(UserError, match='no committed network for preset small'):
        make_results.network_folders(['small'], from_weights=True, jobs=1)
    run = str(tmp_path / 'runs' / 'counting' / 'small')
    fake_finished_run(run, training.resolve_settings('small'))
    folders = make_results.network_folders(['small'], from_weights=False, jobs=1)
    assert folders == {'small': str(tmp_path / 'store' / 'small')}
    assert sorted(os.listdir(folders['small'])) == ['log', 'model.npz', 'settings.json']
    assert make_results.network_folders(['small'], True, 1) == folders
    with open(os.path.join(folders['small'], 'model.npz'), 'ab') as f:
        f.write(b'!')
    with pytest.raises(UserError, match='does not match its SHA-256'):
        make_results.network_folders(['small'], True, 1)


@pytest.fixture(scope='module')
def tiny_runs(tmp_path_factory):
    """One smooth (sigmoid) and one ReLU network of the small family, 1 epoch on 12 images."""
    base = tmp_path_factory.mktemp('chapter2')
    spec = dict(defaults.TRAIN_PRESETS['small']['dataset'], num_images=12, shape_limit=4)
    data = training.ensure_dataset(str(base / 'data'), spec)
    runs = {}
    for preset in ('small', 'small-relu'):
        settings = training.resolve_settings(preset, {'epochs': 1, 'batch_size': 4})
        settings['test_fraction'] = 0.25
        training.train(settings, data, str(base / preset), progress=False)
        runs[preset] = str(base / preset)
    return runs, spec


def test_chapter2_measures_figures_and_report_on_tiny_networks(tiny_runs, tmp_path):
    from counting import chapter2, figures
    runs, spec = tiny_runs
    nets, maps = {}, {}
    for preset, run in runs.items():
        nets[preset], maps[preset], _ = chapter2.measure_network(run, images=2, examples=2)
        nets[preset].update(figure=preset, settings={'epochs': 1, 'one_scale_per_image': True},
                            weights={'train_seconds': 1.0})
    smooth, relu = nets['small'], nets['small-relu']
    assert smooth['counting']['images'] == 3 and len(smooth['images']) == 2
    assert set(smooth['regions']) == {'edge', 'corners', 'interior', 'background'}
    assert set(smooth['stride_grid']) == {'2', '4', '8'}
    assert smooth['sets']['sets'] >= 1 and 'fraction_by_step' in smooth['sets']
    assert 'sets' not in relu and relu['first_importance_max']['median'] == 0
    shortcut = chapter2.measure_shortcut(runs, spec, 4, images=6)
    assert set(shortcut['area_fit']) == {'scale_per_shape', 'one_scale_per_image'}
    assert set(shortcut['size_bias']['small']) == {'smallest', 'largest'}
    figures.figure_2_3(str(tmp_path / 'f23.png'), maps['small'], None)
    figures.figure_2_4(str(tmp_path / 'f24.png'), maps['small'], None)
    figures.figure_activation(str(tmp_path / 'f25.png'), '2.5', maps['small-relu'], None, 't')
    assert all((tmp_path / n).stat().st_size > 0 for n in ('f23.png', 'f24.png', 'f25.png'))
    progress = {'preset': 'small', 'epochs': {
        str(epoch): {'counting': {'mae': mae}, 'regions': smooth['regions']}
        for epoch, mae in ((10, 2.0), (5, 3.0))}}
    text = make_results.report({'networks': nets, 'shortcut': shortcut, 'thesis_files': None,
                                'stride_grid_control': None, 'training_progress': progress,
                                'made_by': {'command': 'c', 'commit': 'x', 'device': 'd',
                                            'date': 'today'}})
    assert '| ours: small |' in text and 'second derivative zero' in text
    rows = [line for line in text.splitlines() if line.startswith(('| 5 |', '| 10 |'))]
    assert rows[0].startswith('| 5 | 3.000 | ') and rows[1].startswith('| 10 | 2.000 | ')
    assert 'uncommitted' not in text.splitlines()[0]
    dirty = make_results.report({'networks': nets, 'shortcut': shortcut, 'thesis_files': None,
                                 'stride_grid_control': None,
                                 'made_by': {'command': 'c', 'commit': 'x+dirty', 'device': 'd',
                                             'date': 'today'}})
    assert dirty.splitlines()[0].endswith('(made from a working tree with uncommitted changes)')


def test_bench_times_training_and_localisation_of_a_preset():
    from counting import bench
    device = chainer.get_device('@numpy')
    r = bench.bench_training('small', 1, device, batch=2)
    assert r['seconds_per_image'] > 0 and r['full_run'] == '30 epochs x 5400 images'
    # both are rounded (hours to 0.01, seconds to 1e-4): on a fast CPU 0.225 h prints as 0.23
    assert r['estimated_full_run_hours'] == pytest.approx(
        r['seconds_per_image'] * 5400 * 30 / 3600, rel=0.02, abs=0.005 + 1e-4 * 5400 * 30 / 3600)
    assert r['full_run_tflop'] == pytest.approx(3 * 15.417344e6 * 5400 * 30 / 1e12, abs=0.1)
    loc = bench.bench_localisation('small', device, 2)
    assert loc['seconds_per_step'] > 0 and loc['image'] == '96x96'


def test_one_scale_per_image_sampler_property():
    from counting import chapter2, shapes
    spec = defaults.TRAIN_PRESETS['small']['dataset']
    choices = shapes.count_choices(spec['shape_types'], spec['shape_limit'])
    per_image, per_shape = set(), []
    for mode in (True, False):
        s = chapter2.sampler_settings(spec, limit_scale_resampling=mode)
        for i in range(30):
            scales = [a['scale'] for a in shapes.sample_image(5, i, s, choices)[1]]
            if mode:
                assert len(set(scales)) <= 1        # one scale for every shape of the image
                per_image |= set(scales)
            else:
                per_shape.append(len(set(scales)))
    assert len(per_image) > 3                       # ... drawn afresh for each image
    assert max(per_shape) >= 3                      # a scale per shape
