"""Regenerate results/counting: trains the runs it needs, tests them, localises, draws figures.

    python counting/make_results.py [--images 50] [--force]

Runs (under runs/counting/): the default preset (SoftPlus) and the same configuration with
relu, Modified SoftPlus and sigmoid. A run is reused only when its settings.json shows the
settings asked for, a test or localisation output only when it was made by the same command from
the same model.npz; anything else is redone (everything with --force). Writes figures analogous
to thesis Figures 2.3-2.7, metrics.md and metrics.json, each figure with a sidecar JSON of its
provenance.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import counting  # noqa: F401
import numpy as np
from PIL import Image

from counting import training
from runkit.cli import Parser, UserError, positive_int, run_main
from runkit.provenance import atomic_write, provenance, write_json, write_text
from runkit.runs import runs_root

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = runs_root('counting')
OUT = os.path.join(ROOT, 'results', 'counting')
PRESET = 'default'

# Runs compared: name -> settings overriding the default preset (train.py flags of those names).
VARIANTS = {
    'default': {},                                      # softplus
    'relu': {'activation': 'relu'},
    'modified_softplus': {'activation': 'modified_softplus'},
    'sigmoid': {'activation': 'sigmoid'},
}
# Beside each test/detect output: the command and model it was made from.
MADE_FROM = 'made_from.json'


def shown(args):
    """A command as recorded: 'python' and paths relative to the checkout."""
    return ['python'] + [os.path.relpath(a, ROOT) if isinstance(a, str) and
                         a.startswith(ROOT + os.sep) else str(a) for a in args]


def run_script(args):
    print('running: %s' % ' '.join(shown(args)), flush=True)
    proc = subprocess.run([sys.executable] + [str(a) for a in args], cwd=ROOT)
    if proc.returncode != 0:
        raise UserError('step failed (exit %d): %s' % (proc.returncode, ' '.join(shown(args))))


def train_step(out, overrides, workers, force, log):
    """Train the run unless `out` holds a finished run of exactly these settings.
    Returns whether it trained."""
    args = [os.path.join(ROOT, 'counting', 'train.py'), '--preset', PRESET, '--out', out,
            '--no-progress', '--workers', workers]
    for key, value in overrides.items():
        flag = key.replace('_', '-')
        args += ['--' + flag] if value is True else ['--no-' + flag] if value is False else \
            ['--' + flag, value]
    log.append(' '.join(shown(args)))
    wanted = training.resolve_settings(PRESET, overrides)
    if not force and training.finished(out, wanted):
        print('reusing %s (same settings)' % os.path.relpath(out, ROOT))
        return False
    run_script(args)
    return True


def file_sha1(path):
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha1').hexdigest()


def output_step(args, folder, done, model, force, log):
    """Run test.py/detect.py into `folder` unless `done` there was made by the same command
    from the same model file; a rerun starts from an empty folder."""
    command = shown(args)
    log.append(' '.join(command))
    key = {'command': command, 'model_sha1': file_sha1(model)}
    stamp = os.path.join(folder, MADE_FROM)
    if not force and os.path.exists(done) and os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == key:
                print('reusing %s' % os.path.relpath(done, ROOT))
                return
    if os.path.isdir(folder):
        shutil.rmtree(folder)   # outputs of another model or command
    run_script(args)
    write_json(stamp, key)


def load_png(path):
    return np.asarray(Image.open(path).convert('RGB'))


def save_figure(fig, name, sources, extra):
    path = os.path.join(OUT, name + '.png')
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=110))
    write_json(os.path.join(OUT, name + '.json'),
               {'figure': name + '.png', 'made_by': provenance(**extra),
                'from_commands': sources})


def axes_grid(rows, cols, scale=1.7):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(rows, cols, figsize=(cols * scale, rows * scale + 0.4),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return plt, fig, axes


def detect_folder(run):
    return os.path.join(RUNS, run, 'detect')


def example_names(run, k):
    folder = detect_folder(run)
    return sorted(n for n in os.listdir(folder)
                  if os.path.isdir(os.path.join(folder, n)))[:k]


def figure_saliency(sources, extra):
    names = example_names('default', 3)
    plt, fig, axes = axes_grid(2, len(names))
    for j, n in enumerate(names):
        axes[0, j].imshow(load_png(os.path.join(detect_folder('default'), n, 'image.png')))
        axes[1, j].imshow(load_png(os.path.join(detect_folder('default'), n, 'saliency.png')))
        axes[0, j].set_title(n, fontsize=8)
    axes[0, 0].set_ylabel('image', fontsize=8)
    axes[1, 0].set_ylabel('saliency$^{0.1}$', fontsize=8)
    fig.suptitle('Fig 2.3 analogue: image and saliency$^{0.1}$ (default SoftPlus network)',
                 fontsize=9)
    save_figure(fig, 'fig2_3_image_saliency', sources, extra)
    plt.close(fig)


def figure_localisation(sources, extra, sets=3):
    names = example_names('default', 2)
    plt, fig, axes = axes_grid(2 * len(names), sets + 1)
    for i, n in enumerate(names):
        folder = os.path.join(detect_folder('default'), n)
        with open(os.path.join(folder, 'sets.json')) as f:
            info = json.load(f)['sets']
        axes[2 * i, 0].imshow(load_png(os.path.join(folder, 'boxes.png')))
        axes[2 * i, 0].set_title('%s: boxes' % n, fontsize=7)
        axes[2 * i + 1, 0].imshow(load_png(os.path.join(folder, 'saliency.png')))
        axes[2 * i + 1, 0].set_title('saliency', fontsize=7)
        for k in range(sets):
            if k >= len(info):
                axes[2 * i, k + 1].axis('off')
                axes[2 * i + 1, k + 1].axis('off')
                continue
            r, c = info[k]['seed_row_col']
            mask = load_png(os.path.join(folder, 'set%02d_mask.png' % (k + 1)))
            axes[2 * i, k + 1].imshow(mask)
            axes[2 * i, k + 1].plot([c], [r], 'r+', ms=6)
            axes[2 * i, k + 1].set_title('set %d mask (%d px)' % (k + 1, info[k]['pixels']),
                                         fontsize=7)
            axes[2 * i + 1, k + 1].imshow(
                load_png(os.path.join(folder, 'set%02d_importance.png' % (k + 1))))
            axes[2 * i + 1, k + 1].plot([c], [r], 'r+', ms=6)
            axes[2 * i + 1, k + 1].set_title('set %d importance$^{0.1}$' % (k + 1), fontsize=7)
    fig.suptitle('Fig 2.4 / 2.7 analogue: masks (threshold 5e-10) and importance maps; '
                 '+ = seed', fontsize=8)
    save_figure(fig, 'fig2_4_masks_importance', sources, extra)
    plt.close(fig)


def figure_activations(sources, extra):
    names = example_names('default', 2)
    rows = [('relu', 'ReLU (2.5)'), ('default', 'SoftPlus (2.6)'),
            ('sigmoid', 'sigmoid + BRN (2.7)'), ('modified_softplus', 'Modified SoftPlus')]
    plt, fig, axes = axes_grid(len(rows) + 1, len(names) + 1)
    for j, n in enumerate(names):
        axes[0, j].imshow(load_png(os.path.join(detect_folder('default'), n, 'image.png')))
        axes[0, j].set_title(n, fontsize=7)
    axes[0, -1].axis('off')
    axes[0, 0].set_ylabel('image', fontsize=7)
    for i, (run, label) in enumerate(rows, 1):
        for j, n in enumerate(names):
            axes[i, j].imshow(load_png(os.path.join(detect_folder(run), n, 'saliency.png')))
        first = os.path.join(detect_folder(run), names[0], 'set01_importance.png')
        if os.path.exists(first):
            axes[i, -1].imshow(load_png(first))
        else:
            axes[i, -1].text(0.5, 0.5, 'second derivative\nis zero everywhere',
                             ha='center', va='center', fontsize=7)
        if i == 1:
            axes[i, -1].set_title('set 1 importance$^{0.1}$ %s' % names[0], fontsize=7)
        axes[i, 0].set_ylabel(label, fontsize=7)
    fig.suptitle('Figs 2.5-2.7 analogue: saliency by activation', fontsize=9)
    save_figure(fig, 'fig2_5_2_7_activations', sources, extra)
    plt.close(fig)


def fmt(v, pct=False):
    if v is None:
        return '-'
    return '%.1f%%' % (100 * v) if pct else '%.3f' % v


def tables(sources, extra):
    rows, counting_rows, loc_rows = {}, [], []
    for run in VARIANTS:
        with open(os.path.join(RUNS, run, 'test', 'metrics.json')) as f:
            m = json.load(f)
        with open(os.path.join(RUNS, run, 'settings.json')) as f:
            s = json.load(f)
        rows[run] = {'test': m, 'settings': {k: s[k] for k in (
            'network', 'activation', 'batch_renorm', 'epochs', 'optimizer', 'lr', 'batch_size',
            'seed', 'seconds', 'train_images_per_second', 'dataset_folder')},
            'provenance': s['provenance']}
        pt = m['per_type']
        counting_rows.append('| %s | %s | %d | %s / %s | %s / %s | %s / %s | %s | %s |' % (
            run, s['activation'], s['epochs'], fmt(pt['tri']['mae']), fmt(pt['sq']['mae']),
            fmt(pt['tri']['baseline_mae']), fmt(pt['sq']['baseline_mae']),
            fmt(pt['tri']['exact_accuracy'], True), fmt(pt['sq']['exact_accuracy'], True),
            fmt(m['exact_accuracy_all_types'], True), '%.0f s' % s['seconds']))
        detect = os.path.join(RUNS, run, 'detect', 'metrics.json')
        if os.path.exists(detect):
            with open(detect) as f:
                d = json.load(f)
            rows[run]['localisation'] = d
            sweep = os.path.join(RUNS, run, 'detect', 'sweep.json')
            if os.path.exists(sweep):
                with open(sweep) as f:
                    rows[run]['sweep'] = json.load(f)['rows']
            x = d['metrics']
            loc_rows.append('| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %.2f s |' % (
                run, d['selection'], x['images'], fmt(x['pointing_game']),
                fmt(x['mask_precision']), fmt(x['mask_recall']),
                fmt(x['mean_matched_box_iou']), fmt(x['box_f1_at_iou']),
                fmt(x['double_hit_rate']), fmt(x['empty_set_rate']), d['seconds_per_image']))
    lines = ['# Counting results (thesis chapter 2, measured)', '',
             'Produced by `python counting/make_results.py`; every number below comes from the '
             'run folders under runs/counting/ and the commands listed at the end.', '',
             '## Counting on the held-out split (%d images)' % rows['default']['test']['images'],
             '', 'MAE tri / sq against the predict-the-training-mean baseline; exact = rounded '
             'prediction equals the true count.', '',
             '| run | activation | epochs | MAE tri / sq | baseline MAE tri / sq | exact tri / sq '
             '| exact both | train time |', '|---|---|---|---|---|---|---|---|']
    lines += counting_rows
    lines += ['', '## Localisation against the ground-truth polygons', '',
              'Pointing = seed pixel on a shape; mask precision/recall against the seed\'s shape; '
              'box IoU after one-to-one greedy matching, F1 at IoU >= 0.5; double hit = shapes '
              'reached by two or more sets / shapes reached; empty = sets with no pixel.', '',
              '| run | selection | images | pointing | mask precision | mask recall | matched '
              'box IoU | box F1@0.5 | double hit | empty sets | time/image |',
              '|---|---|---|---|---|---|---|---|---|---|---|']
    lines += loc_rows
    chance = pointing_chance(rows['default']['localisation']['metrics']['images'])
    lines += ['', 'Chance level for pointing: %.3f of the pixels of these images lie on a shape.'
              % chance]
    rows['default']['pointing_chance'] = chance
    lines += ['', 'ReLU: no localisation — its second derivative is zero everywhere '
              '(detect.py reports this; only its saliency is drawn).']
    for run in VARIANTS:
        if 'sweep' in rows[run]:
            lines += ['', '## Selection sweep, %s run' % run, '',
                      '| selection | pointing | mask precision | mask recall | matched box IoU '
                      '| box F1@0.5 | double hit | empty sets |', '|---|---|---|---|---|---|---|---|']
            for r in rows[run]['sweep']:
                x = r['metrics']
                lines.append('| %s | %s | %s | %s | %s | %s | %s | %s |' % (
                    r['selection'], fmt(x['pointing_game']), fmt(x['mask_precision']),
                    fmt(x['mask_recall']), fmt(x['mean_matched_box_iou']),
                    fmt(x['box_f1_at_iou']), fmt(x['double_hit_rate']),
                    fmt(x['empty_set_rate'])))
    prov = provenance(**extra)
    lines += ['', '## Provenance', '', '- made by: `%s`' % prov['command'],
              '- commit: `%s`' % prov['commit'], '- device: %s' % prov['device'],
              '- date: %s' % prov['date'], '- seed %s, epochs %s' % (extra['seed'],
                                                                   extra['epochs']),
              '- steps:'] + ['  - `%s`' % c for c in sources] + ['']
    write_text(os.path.join(OUT, 'metrics.md'), '\n'.join(lines))
    write_json(os.path.join(OUT, 'metrics.json'), {'runs': rows, 'made_by': prov,
                                                    'from_commands': sources})


def pointing_chance(n_images):
    """Share of pixels on a shape over the first n held-out images of the default run."""
    from counting import data as data_mod, shapes
    with open(os.path.join(RUNS, 'default', 'settings.json')) as f:
        s = json.load(f)
    dataset = data_mod.ShapeDataset(os.path.join(ROOT, s['dataset_folder']))
    position = {n: i for i, n in enumerate(dataset.names)}
    on = [shapes.label_map(dataset.shapes_of(position[n]), s['image_width'],
                           s['image_height']) > 0 for n in s['test_names'][:n_images]]
    return float(np.mean(on))


def build_parser():
    p = Parser(prog='counting/make_results.py', description=__doc__.splitlines()[0])
    p.add_argument('--images', type=positive_int, default=50,
                   help='held-out images scored by the localisation metrics (default 50)')
    p.add_argument('--force', action='store_true', help='redo steps whose outputs exist')
    p.add_argument('--workers', type=positive_int, default=2)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    here = os.path.join(ROOT, 'counting')
    log = []
    for run, overrides in VARIANTS.items():
        out = os.path.join(RUNS, run)
        model = os.path.join(out, 'model.npz')
        train_step(out, overrides, args.workers, args.force, log)
        test_folder = os.path.join(out, 'test')
        output_step([os.path.join(here, 'test.py'), out], test_folder,
                    os.path.join(test_folder, 'metrics.json'), model, args.force, log)
        detect_out = detect_folder(run)
        if run == 'relu':
            detect = [os.path.join(here, 'detect.py'), out, '--images', 4, '--saliency-only']
            done = detect_out
        else:
            detect = [os.path.join(here, 'detect.py'), out, '--images', args.images,
                      '--save-pictures', 4] + (['--sweep'] if run == 'default' else [])
            done = os.path.join(detect_out, 'metrics.json')
        output_step(detect, detect_out, done, model, args.force, log)
    with open(os.path.join(RUNS, 'default', 'settings.json')) as f:
        s = json.load(f)
    extra = {'seed': s['seed'], 'epochs': s['epochs'], 'device': s['device']}
    figure_saliency(log, extra)
    figure_localisation(log, extra)
    figure_activations(log, extra)
    tables(log, extra)
    print('wrote %s' % OUT)


if __name__ == '__main__':
    run_main(main)
