"""Does the count localise? Every localiser of counting/localisers.py on the same held-out images.

    record, examples = make(presets, methods, images=60, calibration_images=12)
    write(out_folder, record, examples)   # localisation.md / .json / .png, extrapolation.png

For each committed network (results/weights/counting/, checksums verified) the first `images`
held-out images are scored with counting/localisation_metrics.py (pointing game, mask
precision / recall, matched box IoU, box F1 at IoU >= 0.5, double hits); the calibrated methods
choose their threshold on the last `calibration_images` held-out images, which are never scored.
Rates are pooled over images (micro-averages) with a 95 % bootstrap interval over images
(images resampled with replacement `bootstrap` times, seeded). "Chance F1" scores a method's own
sets each moved to a random place (localisers.place_at_random).

Counting outside the training range: fresh images from the preset's sampler
(chapter2.sampler_settings; one seeded generator per image, shapes.sample_image) with more shapes
than the training maximum (max + 1 .. 1.5 max), with every scale below / above the training range
(lo - 3 .. lo - 1, hi + 1 .. hi + 4), and a control inside it; an image whose shapes cannot be
placed is skipped and counted. Per condition: MAE over the per-type counts, MAE of the total,
the share of images with both rounded counts exact, the mean signed error of the total.
"""
import os
import time

import numpy as np

from counting import chapter2, defaults, localisers, shapes, trained, training, weights
from counting import data as data_mod
from counting import localisation_metrics as lm
from counting import saliency as sal
from counting.test import predict
from runkit.cli import UserError
from runkit.devices import get_device
from runkit.provenance import atomic_write, record_title, write_json, write_text

# preset -> what it stands for (the networks whose figures show localisation)
PRESETS = {
    'small': 'Figures 2.3/2.4 analogue: sigmoid + Batch Renormalization, one scale per image',
    'small-softplus': 'Figure 2.6 analogue: SoftPlus, a scale per shape',
    'small-sigmoid-per-shape': 'Figure 2.7 analogue: sigmoid + Batch Renormalization, a scale '
                               'per shape',
}
DEFAULTS = {'images': 60, 'calibration_images': 12, 'extrapolation_images': 100, 'seed': 0,
            'bootstrap': 1000}
METRICS = ('pointing_game', 'mask_precision', 'mask_recall', 'mean_matched_box_iou',
           'box_f1_at_iou', 'double_hit_rate')
CHANCE_REFERENCE = 'saliency'
EXAMPLES = 2            # images kept for localisation.png
EXTRAPOLATION_SEED = 1000


def load_network(preset, store=None, device=None):
    """(model, settings, dataset, held-out indices) of a committed network."""
    folder = weights.verified_folder(preset, store)
    if folder is None:
        raise UserError('no committed network for preset %s in %s; make it with '
                        'counting/make_results.py' % (preset, store or weights.STORE))
    model, settings = trained.load(folder, device or localisers.CPU)
    dataset_folder = training.ensure_dataset(training.preset_dataset_folder(preset),
                                             settings['dataset'])
    dataset = data_mod.ShapeDataset(dataset_folder)
    return model, settings, dataset, trained.held_out_indices(dataset, settings)


def label_maps(dataset, indices, settings):
    return [shapes.label_map(dataset.shapes_of(i), settings['image_width'],
                             settings['image_height']) for i in indices]


def rng_for(seed, image, method, stream=0):
    """The generator of one (image, method): independent of which other methods run."""
    return np.random.default_rng([seed, image, localisers.METHODS.index(method), stream])


def score_network(preset, methods, images, calibration_images, seed=0, store=None,
                  device=None, log=print):
    """Every method on the first `images` held-out images of `preset`'s committed network.
    Returns (per-method results with per-image counts, calibration, example sets)."""
    device = device or localisers.CPU
    model, settings, dataset, held_out = load_network(preset, store, device)
    if images + (calibration_images if set(methods) & set(localisers.CALIBRATED) else 0) \
            > len(held_out):
        raise UserError('%s has %d held-out images: too few for %d scored and %d calibration '
                        'images' % (preset, len(held_out), images, calibration_images))
    scored = held_out[:images]
    truths = [dataset.shapes_of(i) for i in scored]
    labels = label_maps(dataset, scored, settings)
    calibration, options = {}, {}
    calib = held_out[len(held_out) - calibration_images:]
    for name in methods:
        if name in localisers.CALIBRATED:
            try:
                calibration[name] = localisers.calibrate(
                    name, model, settings, [np.asarray(dataset.images[i]) for i in calib],
                    label_maps(dataset, calib, settings), device=device)
            except sal.ZeroSecondDerivative as err:
                calibration[name] = {'not_applicable': str(err)}
                continue
            options[name] = {'threshold': calibration[name]['threshold']}
            log('  %s: calibrated threshold %g on %d images (%.1f s)'
                % (name, calibration[name]['threshold'], len(calib),
                   calibration[name]['seconds']))
    results = {name: {'per_image': [], 'chance_per_image': [], 'seconds': []}
               for name in methods}
    examples = {name: [] for name in methods}
    for position, (i, truth, lab) in enumerate(zip(scored, truths, labels)):
        image = np.asarray(dataset.images[i])
        done = {}
        for name in methods:
            r = results[name]
            if 'not_applicable' in r or (name in localisers.CALIBRATED and name not in options):
                r.setdefault('not_applicable', calibration.get(name, {}).get('not_applicable'))
                continue
            extra = dict(options.get(name, {}))
            if name == 'chance':
                extra['reference'] = CHANCE_REFERENCE
                extra['sets'] = done.get(CHANCE_REFERENCE)
            start = time.time()
            try:
                found = localisers.localise_sets(name, model, settings, image,
                                                 rng_for(seed, position, name), device, **extra)
            except sal.ZeroSecondDerivative as err:
                r['not_applicable'] = str(err)
                continue
            r['seconds'].append(time.time() - start)
            done[name] = found
            r['per_image'].append(lm.image_counts(found, lab, len(truth),
                                                  defaults.DETECT['iou_hit']))
            if name != 'chance':
                moved = localisers.place_at_random(found, image.shape[1:],
                                                   rng_for(seed, position, name, 1))
                r['chance_per_image'].append(lm.image_counts(moved, lab, len(truth),
                                                             defaults.DETECT['iou_hit']))
            if position < EXAMPLES:
                examples[name].append([s['mask'] for s in found])
    example_images = [np.asarray(dataset.images[i]) for i in scored[:EXAMPLES]]
    return results, calibration, {'images': example_images, 'sets': examples,
                                  'names': [dataset.names[i] for i in scored[:EXAMPLES]]}, \
        model, settings, [dataset.names[i] for i in scored]


def pooled(per_image):
    """lm.summarise of the counts summed over images."""
    total = {}
    for c in per_image:
        lm.add(total, c)
    return lm.summarise(total)


def bootstrap(per_image, samples, seed, keys=METRICS):
    """{metric: [2.5 %, 97.5 %]} of the pooled rates over images resampled with replacement."""
    if not per_image or samples <= 0:
        return {k: None for k in keys}
    names = sorted(per_image[0])
    table = np.array([[c[n] for n in names] for c in per_image], dtype=np.float64)
    rng = np.random.default_rng([seed, 7])
    weights_ = rng.multinomial(len(per_image), np.full(len(per_image), 1.0 / len(per_image)),
                               size=samples)
    sums = weights_ @ table
    values = {k: [] for k in keys}
    for row in sums:
        m = lm.summarise(dict(zip(names, row)))
        for k in keys:
            if m[k] is not None:
                values[k].append(m[k])
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v else None
            for k, v in values.items()}


def per_image_spread(per_image, key='box_f1_at_iou'):
    """Median and quartiles over images of one per-image rate."""
    return chapter2.summary([lm.summarise(c)[key] for c in per_image])


def summarise_method(r, samples, seed):
    if not r['per_image']:
        return {'not_applicable': r.get('not_applicable') or 'no images scored'}
    out = {'metrics': pooled(r['per_image']),
           'interval_95': bootstrap(r['per_image'], samples, seed),
           'f1_per_image': per_image_spread(r['per_image']),
           'seconds_per_image': float(np.mean(r['seconds'])),
           'sets_per_image': float(np.mean([c['sets'] for c in r['per_image']]))}
    if r['chance_per_image']:
        out['chance'] = {'metrics': pooled(r['chance_per_image']),
                         'interval_95': bootstrap(r['chance_per_image'], samples, seed)}
    if r.get('not_applicable'):
        out['note'] = r['not_applicable']
    return out


# --- counting outside the training range -----------------------------------------------------

def extrapolation_conditions(spec):
    """{condition: (sampler changes, count choices)} around a preset's dataset spec."""
    types, limit = tuple(spec['shape_types']), spec['shape_limit']
    lo, hi = spec['scale_bounds']
    training_choices = shapes.count_choices(types, limit)
    more = [c for c in shapes.count_choices(types, int(round(1.5 * limit))) if sum(c) > limit]
    return {
        'training range': ({}, training_choices),
        'more shapes (%d-%d)' % (limit + 1, int(round(1.5 * limit))): ({}, more),
        'smaller shapes (scale %d-%d)' % (max(1, lo - 3), lo - 1):
            ({'scale_bounds': (max(1, lo - 3), lo - 1)}, training_choices),
        'larger shapes (scale %d-%d)' % (hi + 1, hi + 4):
            ({'scale_bounds': (hi + 1, hi + 4)}, training_choices),
    }


def sample_condition(settings, choices, n, seed, max_tries=None):
    """(uint8 images, counts) of n placeable images drawn as shapes.sample_image draws them;
    images whose shapes cannot be placed are skipped (returned: how many)."""
    images, counts, skipped, index = [], [], 0, 0
    max_tries = max_tries or 5 * n
    while len(images) < n and index < max_tries:
        try:
            c, _, picture = shapes.sample_image(seed, index, settings, choices)
        except shapes.PlacementError:
            skipped += 1
        else:
            images.append(np.asarray(picture).transpose(2, 0, 1))
            counts.append([c[t] for t in settings['shape_types']])
        index += 1
    return np.array(images), np.array(counts, dtype=np.float32), skipped


def extrapolation(model, settings, n, seed=EXTRAPOLATION_SEED, device=None):
    """Counting error per condition (see module docstring) and the points of the plot."""
    device = device or localisers.CPU
    spec = settings['dataset']
    out, points = {}, {}
    for k, (condition, (changes, choices)) in enumerate(extrapolation_conditions(spec).items()):
        sampler = chapter2.sampler_settings(spec, **changes)
        images, truth, skipped = sample_condition(sampler, choices, n, seed + k)
        pred = predict(model, images, settings['input_scale'], device)
        total_err = pred.sum(axis=1) - truth.sum(axis=1)
        out[condition] = {
            'images': int(len(truth)), 'skipped_unplaceable': skipped,
            'true_total_range': [int(truth.sum(axis=1).min()), int(truth.sum(axis=1).max())],
            'scale_bounds': list(sampler['scale_bounds']),
            'mae': float(np.abs(pred - truth).mean()),
            'total_mae': float(np.abs(total_err).mean()),
            'exact_rate': float((np.rint(pred) == truth).all(axis=1).mean()),
            'mean_signed_total_error': float(total_err.mean())}
        points[condition] = (truth.sum(axis=1).tolist(), pred.sum(axis=1).tolist())
    return out, points


# --- the whole table --------------------------------------------------------------------------

def make(presets, methods, images=DEFAULTS['images'],
         calibration_images=DEFAULTS['calibration_images'],
         extrapolation_images=DEFAULTS['extrapolation_images'], seed=DEFAULTS['seed'],
         bootstrap_samples=DEFAULTS['bootstrap'], store=None, device='@numpy', log=print):
    """(record, examples): every method on every preset, and the extrapolation."""
    localisers.check_methods(methods)
    dev = get_device(device)
    record = {'settings': {'presets': list(presets), 'methods': list(methods),
                           'images': images, 'calibration_images': calibration_images,
                           'extrapolation_images': extrapolation_images, 'seed': seed,
                           'bootstrap_samples': bootstrap_samples,
                           'iou_hit': defaults.DETECT['iou_hit'],
                           'thesis_threshold': defaults.DETECT['threshold'],
                           'calibration_thresholds': list(defaults.DETECT['sweep_thresholds']),
                           'cap_quantile': localisers.CAP_QUANTILE,
                           'smoothgrad': localisers.SMOOTHGRAD,
                           'integrated_gradients': localisers.INTEGRATED_GRADIENTS,
                           'chance_reference': CHANCE_REFERENCE},
              'networks': {}}
    examples, start = {}, time.time()
    for preset in presets:
        log('%s: %s' % (preset, PRESETS.get(preset, '')), flush=True)
        began = time.time()
        results, calibration, ex, model, settings, names = score_network(
            preset, methods, images, calibration_images, seed, store, dev, log)
        net = {'stands_for': PRESETS.get(preset), 'images': names,
               'expected_shape_area': localisers.expected_shape_area(settings),
               'calibration': calibration,
               'methods': {name: summarise_method(results[name], bootstrap_samples, seed)
                           for name in methods}}
        if extrapolation_images:
            net['extrapolation'], ex['extrapolation'] = extrapolation(
                model, settings, extrapolation_images, device=dev)
            net['extrapolation_training_max'] = settings['dataset']['shape_limit']
        net['seconds'] = time.time() - began
        record['networks'][preset] = net
        examples[preset] = ex
        for name in methods:
            m = net['methods'][name]
            log('  %-22s %s' % (name, 'n/a' if 'metrics' not in m else
                                '%.3f s per image, box F1 %.3f' % (
                                    m['seconds_per_image'], m['metrics']['box_f1_at_iou'])),
                flush=True)
    record['seconds_per_image'] = {
        name: float(np.mean([n['methods'][name]['seconds_per_image']
                             for n in record['networks'].values()
                             if 'seconds_per_image' in n['methods'][name]] or [np.nan]))
        for name in methods}
    record['total_seconds'] = time.time() - start
    record['best'] = best_method(record)
    return record, examples


def best_method(record):
    """The network-based method with the highest box F1, averaged over the networks (None when
    none was scored)."""
    scores = {}
    for name in record['settings']['methods']:
        if name in localisers.REFERENCES:
            continue
        f1 = [n['methods'][name]['metrics']['box_f1_at_iou'] for n in record['networks'].values()
              if 'metrics' in n['methods'][name]]
        if f1:
            scores[name] = float(np.mean(f1))
    return max(scores, key=lambda k: (scores[k], -localisers.METHODS.index(k))) if scores \
        else None


# --- the record ----------------------------------------------------------------------------

def _f(value, digits=2):
    return '-' if value is None else '%.*f' % (digits, value)


def _with_interval(m, key, digits=2):
    value, interval = m['metrics'][key], m['interval_95'][key]
    if value is None:
        return '-'
    return '%.*f [%.*f, %.*f]' % (digits, value, digits, interval[0], digits, interval[1]) \
        if interval else _f(value, digits)


def markdown(record):
    made = record['made_by']
    s = record['settings']
    lines = [record_title('# Does the count localise? Localisers of the counting networks '
                          '(beyond thesis 2.2)', made['commit']), '',
             'Made by `%s` at commit `%s` on %s, %s. Every number is in `localisation.json`; '
             'the methods are defined in `counting/localisers.py`, the measures in '
             '`counting/localisation_metrics.py`.' % (made['command'], made['commit'],
                                                      made['device'], made['date']), '',
             'Each network: the first %d held-out images (the calibrated methods chose their '
             'threshold from %s on the last %d held-out images, never scored). Rates pooled '
             'over images, [95 %% bootstrap interval over images, %d resamples]; box F1 at '
             'IoU >= %g; chance F1: the same sets, each moved to a random place; double hits: '
             'shapes found by two or more sets / shapes found; seconds: localisation of one '
             'image on this CPU.' % (s['images'], ', '.join('%g' % t for t in
                                                            s['calibration_thresholds']),
                                     s['calibration_images'], s['bootstrap_samples'],
                                     s['iou_hit']), '',
             'Reading it: `integrated_gradients` (black baseline) and `gradient_x_input` are '
             'zero wherever the image is black, so they can only select shape pixels; measure '
             'them against `image_components` (the image alone, no network), not only against '
             'chance. `saliency`, `smoothgrad` and the second-derivative rules see the image '
             'only through the network.']
    for preset, net in record['networks'].items():
        lines += ['', '## %s (%s)' % (preset, net['stands_for']), '',
                  '| method | pointing | mask precision | mask recall | matched box IoU | '
                  'box F1 | chance F1 | double hits | sets / image | s / image |',
                  '|---|---|---|---|---|---|---|---|---|---|']
        for name, m in net['methods'].items():
            if 'metrics' not in m:
                lines.append('| %s | not applicable: %s | | | | | | | | |'
                             % (name, m['not_applicable']))
                continue
            mm = m['metrics']
            lines.append('| %s | %s | %s | %s | %s | %s | %s | %s | %.1f | %.3f |' % (
                name, _with_interval(m, 'pointing_game'), _f(mm['mask_precision']),
                _f(mm['mask_recall']), _f(mm['mean_matched_box_iou']),
                _with_interval(m, 'box_f1_at_iou'),
                _f(m['chance']['metrics']['box_f1_at_iou']) if 'chance' in m else '-',
                _f(mm['double_hit_rate']), m['sets_per_image'], m['seconds_per_image']))
        cal = {k: v for k, v in net['calibration'].items() if 'threshold' in v}
        if cal:
            lines += ['', 'Calibrated thresholds: ' + '; '.join(
                '%s %g (calibration F1 %.2f)' % (k, v['threshold'], v['f1']['%g' % v['threshold']])
                for k, v in cal.items()) + '.']
    if any('extrapolation' in n for n in record['networks'].values()):
        lines += ['', '## Counting outside the training range', '',
                  'Fresh images per condition (`extrapolation.png`: predicted against true total '
                  'count). MAE over the per-type counts; exact: both rounded counts right; '
                  'signed: mean predicted minus true total.', '',
                  '| network | condition | images (skipped) | true totals | MAE | total MAE | '
                  'exact | signed |', '|---|---|---|---|---|---|---|---|']
        for preset, net in record['networks'].items():
            for condition, e in net.get('extrapolation', {}).items():
                lines.append('| %s | %s | %d (%d) | %d-%d | %.2f | %.2f | %.1f%% | %+.2f |' % (
                    preset, condition, e['images'], e['skipped_unplaceable'],
                    e['true_total_range'][0], e['true_total_range'][1], e['mae'],
                    e['total_mae'], 100 * e['exact_rate'], e['mean_signed_total_error']))
    lines += ['', '## Cost', '', 'Seconds per image, mean over the networks: ' + ', '.join(
        '%s %.3f' % (k, v) for k, v in record['seconds_per_image'].items()) +
        '. The whole table took %.0f s.' % record['total_seconds'], '']
    if record.get('best'):
        lines += ['`localisation.png`: the sets of `%s` (best mean box F1 of the network '
                  'methods) and of `thesis` on the same images.' % record['best'], '']
    return '\n'.join(lines)


def _plt():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


COLOURS = np.array([[255, 255, 0], [255, 0, 0], [0, 255, 0], [255, 0, 255], [0, 255, 255],
                    [255, 128, 0], [255, 255, 255]], dtype=np.float64)


def overlay(image_chw, masks):
    """The image dimmed, each set tinted in its colour."""
    picture = image_chw.transpose(1, 2, 0).astype(np.float64) * 0.6
    for k, mask in enumerate(masks):
        picture[mask] = 0.4 * picture[mask] + 0.6 * COLOURS[k % len(COLOURS)]
    return np.clip(picture, 0, 255).astype(np.uint8)


def plot_localisation(path, record, examples):
    """Rows: networks; per example image the sets of `thesis` and of the best method."""
    plt = _plt()
    shown = [m for m in ('thesis', record.get('best')) if m]
    shown = list(dict.fromkeys(shown))
    rows = list(examples)
    cols = max(1, EXAMPLES * len(shown))
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.1 * cols, 2.5 * len(rows) + 0.4),
                             squeeze=False)
    for r, preset in enumerate(rows):
        ex = examples[preset]
        for i, image in enumerate(ex['images']):
            for j, name in enumerate(shown):
                ax = axes[r, i * len(shown) + j]
                ax.set_xticks([])
                ax.set_yticks([])
                masks = ex['sets'].get(name) or []
                if i >= len(masks):
                    ax.imshow(image.transpose(1, 2, 0))
                    ax.set_title('%s: %s\n%s n/a' % (preset, ex['names'][i], name), fontsize=6)
                    continue
                ax.imshow(overlay(image, masks[i]), interpolation='nearest')
                for k, mask in enumerate(masks[i]):
                    box = sal.bounding_box(mask)
                    if box:
                        ax.add_patch(plt.Rectangle((box[0] - 0.5, box[1] - 0.5),
                                                   box[2] - box[0] + 1, box[3] - box[1] + 1,
                                                   fill=False, lw=0.7,
                                                   color=COLOURS[k % len(COLOURS)] / 255))
                ax.set_title('%s: %s\n%s, %d sets' % (preset, ex['names'][i], name,
                                                      len(masks[i])), fontsize=6)
    fig.suptitle('Found sets (tint) and their boxes: the thesis\'s rule and the best method',
                 fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=110))
    plt.close(fig)


def plot_extrapolation(path, record, examples):
    plt = _plt()
    presets = [p for p in examples if 'extrapolation' in examples[p]]
    fig, axes = plt.subplots(1, max(1, len(presets)), figsize=(4 * max(1, len(presets)), 4),
                             squeeze=False)
    for k, preset in enumerate(presets):
        ax = axes[0, k]
        jitter = np.random.RandomState(k)
        top = 0
        for condition, (truth, pred) in examples[preset]['extrapolation'].items():
            truth = np.asarray(truth)
            ax.scatter(truth + jitter.uniform(-0.2, 0.2, len(truth)), pred, s=5, alpha=0.5,
                       label=condition)
            top = max(top, truth.max() if len(truth) else 0, max(pred) if len(pred) else 0)
        ax.plot([0, top + 0.5], [0, top + 0.5], 'k--', lw=0.8)
        ax.axvline(record['networks'][preset]['extrapolation_training_max'] + 0.5, color='grey',
                   lw=0.8, ls=':')
        ax.set_xlabel('true total count')
        ax.set_ylabel('predicted total count')
        ax.set_title(preset, fontsize=8)
        ax.legend(fontsize=6)
    fig.suptitle('Counting outside the training range (dotted: the training maximum)',
                 fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=100))
    plt.close(fig)


def write(out, record, examples):
    """localisation.md, localisation.json, localisation.png and extrapolation.png in `out`."""
    write_json(os.path.join(out, 'localisation.json'), record)
    write_text(os.path.join(out, 'localisation.md'), markdown(record))
    plot_localisation(os.path.join(out, 'localisation.png'), record, examples)
    if any('extrapolation' in e for e in examples.values()):
        plot_extrapolation(os.path.join(out, 'extrapolation.png'), record, examples)
