"""Thesis 2.2's claims measured on a trained network (the measures: counting/figure_measures.py).

    net = measure_network(run_dir, images=20)   # counting, saliency regions, selected sets
    shortcut = measure_shortcut(runs, settings)  # pixel area vs count; size-biased test sets

Saliency and localisation follow thesis 2.2.1-2.2.2 (counting/saliency.py) on the first held-out
images of the run, with the thesis's threshold 5e-10 on derivatives with respect to the stored
0..255 pixels. The edge band is 1 px at the analogue's 96 px (the thesis's files are measured
with 4 px at 1000; 4 x 96 / 1000 rounds below the 1 px minimum).
"""
import os
import shutil
import tempfile
import time

import chainer
import numpy as np

from counting import data as data_mod
from counting import defaults, figure_measures as fm, saliency as sal, shapes, trained
from counting.activations import ACTIVATIONS
from counting.networks import NETWORKS, set_population_statistics
from counting.test import evaluate_run, predict
from counting.training import finish_test_statistics, sampler_request
from runkit.devices import get_device

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BAND = 1
STEPS_SHOWN = 3          # localisation steps kept as pictures per example image
THRESHOLDS = tuple(10.0 ** k for k in range(-12, -3))


def phase_contrast(saliency, period, keep):
    """(max - min) / mean of the mean saliency over the period x period phases of the pixel
    grid, over the pixels in `keep`."""
    rows, cols = np.nonzero(keep)
    phase = (rows % period) * period + cols % period
    sums = np.bincount(phase, weights=saliency[rows, cols], minlength=period * period)
    means = sums / np.maximum(np.bincount(phase, minlength=period * period), 1)
    return float((means.max() - means.min()) / means.mean()) if means.mean() > 0 else None


def stride_grid(saliency, period, keep):
    """Phase contrast at a network's stride period over that at the neighbouring periods
    (p - 1 and p + 1, those above 1): about 1 without a stride grid, well above 1 with one
    (the neighbours carry the same noise and large-scale structure, but no grid)."""
    here = phase_contrast(saliency, period, keep)
    around = [phase_contrast(saliency, q, keep) for q in (period - 1, period + 1) if q > 1]
    around = [c for c in around if c]
    return here / float(np.mean(around)) if here is not None and around else None


def network_periods(layers):
    """Cumulative strides of the strided layers: the periods a stride grid would have."""
    periods, total = [], 1
    for _, _, _, stride, _ in layers:
        if stride > 1:
            total *= stride
            periods.append(total)
    return periods


def summary(values):
    """Median and quartiles over images (None values left out)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    q = np.percentile(values, [25, 50, 75])
    return {'median': float(q[1]), 'q25': float(q[0]), 'q75': float(q[2]), 'n': len(values)}


def analyse_image(model, settings, image, device, examples=False):
    """Saliency regions, stride-grid contrast and (smooth networks) the selected sets of one
    image; with `examples`, also the maps the figures draw."""
    start = time.time()
    graph = sal.SaliencyGraph(model, image, device, settings['input_scale'])
    on = fm.shape_mask(image)
    out = {'counts': graph.counts.tolist(), 'true_shapes': int(fm.label_shapes(on)[1]),
           'regions': fm.where_saliency_lies(graph.saliency, on, BAND)}
    background = fm.regions(on, BAND)['background']
    out['stride_grid'] = {str(p): stride_grid(graph.saliency, p, background)
                            for p in network_periods(NETWORKS[settings['network']].layers)
                            if p <= min(image.shape[1:]) // 8}
    found = []
    if ACTIVATIONS[settings['activation']].zero_second_derivative:
        # the thesis's point about ReLU, checked: the importance map of the most salient pixel
        row, col = np.unravel_index(int(np.argmax(graph.saliency)), graph.saliency.shape)
        out['first_importance_max'] = float(graph.importance(row, col).max())
    else:
        n = int(round(float(graph.counts.sum())))
        found = sal.localise(graph.saliency, graph.importance, n,
                             sal.select_threshold(defaults.DETECT['threshold']))
        out['sets'] = fm.selected_sets([f['mask'] for f in found], on, BAND)
        if found:   # how the first set's size depends on the threshold
            out['first_set_fraction_by_threshold'] = {
                '%g' % t: float((found[0]['importance'] >= t).mean()) for t in THRESHOLDS}
        out['seeds_on_shape'] = [bool(on[f['seed']]) for f in found]
        if found:
            out['first_importance_max'] = float(found[0]['importance'].max())
    out['seconds'] = time.time() - start
    if examples:
        out['maps'] = {'image': image, 'saliency': graph.saliency,
                       'sets': [{'mask': f['mask'], 'importance': f['importance'],
                                 'seed': f['seed']} for f in found[:STEPS_SHOWN]]}
    return out


def measure_network(run_dir, images=20, examples=2, device='@numpy'):
    """Counting on the held-out split, and the figure measures over its first `images` images."""
    device = get_device(device)
    metrics, _, _, settings = evaluate_run(run_dir)
    model, settings = trained.load(run_dir, device)
    dataset = data_mod.ShapeDataset(os.path.join(ROOT, settings['dataset_folder']))
    indices = trained.held_out_indices(dataset, settings)[:images]
    per_image = [analyse_image(model, settings, np.asarray(dataset.images[i]), device,
                               examples=k < examples)
                 for k, i in enumerate(indices)]
    result = {
        'counting': {k: metrics[k] for k in ('images', 'mae', 'baseline_mae',
                                              'exact_accuracy_all_types', 'per_type')},
        'images': [dataset.names[i] for i in indices],
        'regions': {name: {'relative_to_background': summary(
                        [r['regions'][name]['relative_to_background'] for r in per_image]),
                        'share': summary([r['regions'][name]['share'] for r in per_image])}
                    for name in fm.REGIONS},
        'stride_grid': {p: summary([r['stride_grid'][p] for r in per_image])
                        for p in per_image[0]['stride_grid']},
        'seconds_per_image': float(np.mean([r['seconds'] for r in per_image])),
        'first_importance_max': summary([r.get('first_importance_max') for r in per_image]),
    }
    if 'sets' in per_image[0]:
        result['sets'] = sets_summary([r['sets'] for r in per_image])
        result['pointing'] = float(np.mean([x for r in per_image for x in r['seeds_on_shape']]))
        result['first_set_fraction_by_threshold'] = {
            t: summary([r['first_set_fraction_by_threshold'][t] for r in per_image
                        if 'first_set_fraction_by_threshold' in r])
            for t in ('%g' % t for t in THRESHOLDS)}
    return result, [r['maps'] for r in per_image[:examples]], settings


def snapshot_epochs(run_dir):
    """Epochs of the trainer snapshots a counting run kept (snapshot_epoch_N), ascending."""
    names = os.listdir(run_dir) if os.path.isdir(run_dir) else []
    return sorted(int(n.rsplit('_', 1)[1]) for n in names
                  if n.startswith('snapshot_epoch_') and n.rsplit('_', 1)[1].isdigit())


def measure_progress(run_dir, images=20, device='@numpy'):
    """Counting and where the saliency lies at each kept snapshot of a finished run, each
    finished as train.py finishes the last (its test statistics): does the saliency move onto
    the edges as the network learns to count? {epoch: measures}."""
    settings_path = os.path.join(run_dir, 'settings.json')
    settings = trained.read_settings(run_dir)
    model = trained.build(settings, settings_path)
    dataset = data_mod.ShapeDataset(os.path.join(ROOT, settings['dataset_folder']))
    held_out = set(trained.held_out_indices(dataset, settings))
    train_set = data_mod.Examples(dataset, [i for i in range(len(dataset)) if i not in held_out],
                                  settings['input_scale'])
    progress = {}
    for epoch in snapshot_epochs(run_dir):
        chainer.serializers.load_npz(os.path.join(run_dir, 'snapshot_epoch_%d' % epoch), model,
                                     path='updater/model:main/predictor/')
        finish_test_statistics(model, settings, train_set, get_device(device))
        with tempfile.TemporaryDirectory() as folder:   # the snapshot as a run folder
            shutil.copy(settings_path, folder)
            chainer.serializers.save_npz(os.path.join(folder, 'model.npz'), model)
            measured, _, _ = measure_network(folder, images=images, examples=0, device=device)
        progress[str(epoch)] = {'counting': measured['counting'],
                                'regions': measured['regions']}
    return progress


def sets_summary(per_image_sets, steps=(1, 2, 3)):
    """Pooled over images: each measure of the selected sets (all steps), and size by step."""
    every = [row for rows in per_image_sets for row in rows]
    keys = ('fraction', 'on_shape', 'in_band', 'between', 'shape_covered', 'outline_covered')
    out = {k: summary([row[k] for row in every]) for k in keys}
    out['sets'] = len(every)
    out['fraction_by_step'] = {str(k): summary([rows[k - 1]['fraction'] for rows in
                                                per_image_sets if len(rows) >= k])
                               for k in steps}
    return out


def stride_grid_control(preset='small', images=4, seed=0, device='@numpy'):
    """Where a stride grid comes from: the preset's network, untrained, built from the same
    seed with plain and with box-smoothed stride-2 kernels, its Batch Renormalization averages
    set from the images themselves; the stride-grid measure at the first
    stride period, median over `images` images."""
    device = get_device(device)
    spec = defaults.TRAIN_PRESETS[preset]
    cls = NETWORKS[spec['network']]
    period = network_periods(cls.layers)[0]
    x, counts, _ = sample_set(sampler_settings(spec['dataset']), spec['dataset']['shape_limit'],
                              images, seed=0)
    out = {'period': period, 'network': spec['network'], 'untrained_seed': seed}
    for label, smoothed in (('plain strides', False), ('box-smoothed strides', True)):
        variant = type(cls.__name__, (cls,), {'box_smoothed_strides': smoothed})
        np.random.seed(seed)
        model = variant(counts.shape[1], x.shape[2], x.shape[3], spec['activation'],
                        spec['batch_renorm'])
        model.to_device(device)
        set_population_statistics(model, lambda: [device.send(
            x.astype(np.float32) * np.float32(spec['input_scale']))])
        model.out.b.array[...] = device.send(counts.mean(axis=0))
        grids = []
        for image in x:
            g = sal.SaliencyGraph(model, image, device, spec['input_scale'])
            background = fm.regions(fm.shape_mask(image), BAND)['background']
            grids.append(stride_grid(g.saliency, period, background))
        out[label] = summary(grids)
    return out


def sampler_settings(dataset_spec, **changes):
    """The sampler settings of a preset's dataset, with `changes`."""
    return dict(sampler_request(dataset_spec)[2], **changes)


def sample_set(settings, shape_limit, n, seed):
    """(uint8 images (n, 3, H, W), counts (n, types), shape areas in pixels (n,))."""
    choices = shapes.count_choices(settings['shape_types'], shape_limit)
    images, counts, areas = [], [], []
    for i in range(n):
        c, _, picture = shapes.sample_image(seed, i, settings, choices)
        image = np.asarray(picture).transpose(2, 0, 1)
        images.append(image)
        counts.append([c[t] for t in settings['shape_types']])
        areas.append(int(fm.shape_mask(image).sum()))
    return np.array(images), np.array(counts, dtype=np.float32), np.array(areas)


def measure_shortcut(networks, dataset_spec, shape_limit, images=200, seed=7,
                     device='@numpy'):
    """Thesis 2.2.3's shortcut, measured.

    - How well the total shape area predicts the total count, in each sampler mode (a scale
      per shape vs one scale per image), over `images` fresh images each.
    - Each network's mean signed error of the total count on images whose shapes all take the
      smallest scale, and all the largest: a pixel counter under-counts small shapes and
      over-counts large ones; a shape counter does neither.
    `networks`: {name: run folder}."""
    device = get_device(device)
    lo, hi = dataset_spec['scale_bounds']
    fits = {}
    for mode, per_image in (('scale_per_shape', False), ('one_scale_per_image', True)):
        s = sampler_settings(dataset_spec, limit_scale_resampling=per_image)
        _, counts, areas = sample_set(s, shape_limit, images, seed)
        fits[mode] = fm.pixel_count_fit(areas, counts.sum(axis=1))
    ends = {}
    for end, scale in (('smallest', lo), ('largest', hi)):
        s = sampler_settings(dataset_spec, scale_bounds=(scale, scale))
        ends[end] = dict(zip(('images', 'counts', 'areas'),
                             sample_set(s, shape_limit, images, seed + 1)), scale=scale)
    bias = {}
    for name, run in networks.items():
        model, settings = trained.load(run, device)
        bias[name] = {end: fm.size_bias(predict(model, e['images'], settings['input_scale'],
                                                device), e['counts'])
                      for end, e in ends.items()}
    return {'area_fit': fits, 'size_bias': bias, 'scales': {'smallest': lo, 'largest': hi},
            'images': images, 'seed': seed}
