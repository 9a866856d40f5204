"""Re-make results/counting/: thesis chapter 2 (Figures 2.3-2.7 and the claims of 2.2) measured.

    python counting/make_results.py --thesis-figures ../shared/thesis/figures  # may train
    python counting/make_results.py --from-weights          # the committed networks only

Networks: the four 'small' presets (counting/defaults.py), the CPU analogues of the networks
behind Figures 2.3/2.4, 2.5, 2.6 and 2.7. Each is taken from results/weights/counting/ when a
network with the same settings is committed there (checksums verified), else from a finished
run under runs/counting/<preset> with the same settings, else trained there (rerun the command
after an interruption: the run resumes from its last snapshot) and committed to the store.
`--from-weights` never trains. `--thesis-figures DIR` measures the thesis's own figure files
(never copied) with the same code and puts them beside ours; without it, the measurements of an
earlier record are kept and the figures say where the thesis's panels would be.

Writes results/counting/chapter2.md (the side-by-side tables), chapter2.json (every number),
fig2_3.png ... fig2_7.png and provenance.json.
"""
import json
import os
import shlex
import subprocess
import sys

import counting  # noqa: F401

from counting import chapter2, defaults, figures, thesis_figures, training, weights
from runkit.cli import Parser, UserError, positive_int, run_main
from runkit.provenance import provenance, record_title, sha256, write_json, write_text
from runkit.runs import runs_root

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'results', 'counting')
# preset -> what it stands for
PRESETS = {
    'small': 'Figures 2.3/2.4: sigmoid + Batch Renormalization, one scale per image',
    'small-relu': 'Figure 2.5: ReLU, a scale per shape',
    'small-softplus': 'Figure 2.6: SoftPlus, a scale per shape',
    'small-sigmoid-per-shape': 'Figure 2.7: sigmoid + Batch Renormalization, a scale per shape',
}


def shown(args):
    """A command as recorded: 'python', paths relative to the checkout, shell-quoted."""
    return ' '.join(shlex.quote(os.path.relpath(a, ROOT) if a.startswith(ROOT + os.sep) else a)
                    for a in ['python'] + [str(a) for a in args])


def train_command(preset, out, resume):
    return [os.path.join(ROOT, 'counting', 'train.py'), '--preset', preset, '--out', out,
            '--no-progress'] + (['--resume'] if resume else [])


def network_folders(presets, from_weights, jobs):
    """{preset: folder of a finished network with the preset's settings}, training the missing
    ones (`jobs` at a time) and committing each to the store as it finishes."""
    folders, pending = {}, []
    for preset in presets:
        settings = training.resolve_settings(preset)
        stored = weights.verified_folder(preset)
        if stored and training.same_settings(json.load(open(os.path.join(stored, 'settings.json'))),
                                             settings):
            folders[preset] = stored
            continue
        if from_weights:
            raise UserError('no committed network for preset %s in %s; run without '
                            '--from-weights to train it' % (preset, weights.STORE))
        out = os.path.join(runs_root('counting'), preset)
        if training.finished(out, settings):
            print('reusing %s' % os.path.relpath(out, ROOT))
            folders[preset] = weights.export(preset, out)
            continue
        resume = bool([n for n in os.listdir(out) if n.startswith('snapshot_epoch_')]) \
            if os.path.isdir(out) else False
        # each job's dataset is generated here, one at a time, not by parallel trainers
        training.ensure_dataset(training.preset_dataset_folder(preset), settings['dataset'], 2)
        pending.append((preset, out, train_command(preset, out, resume)))
    env = dict(os.environ, OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1') if jobs > 1 \
        else os.environ
    running = []
    while pending or running:
        while pending and len(running) < jobs:
            preset, out, cmd = pending.pop(0)
            os.makedirs(out, exist_ok=True)
            print('training %s: %s (log: %s/train.log)' % (preset, shown(cmd),
                                                            os.path.relpath(out, ROOT)),
                  flush=True)
            log = open(os.path.join(out, 'train.log'), 'a')
            running.append((preset, out, cmd, subprocess.Popen(
                [sys.executable] + cmd, cwd=ROOT, env=env, stdout=log,
                stderr=subprocess.STDOUT), log))
        preset, out, cmd, proc, log = running.pop(0)
        code = proc.wait()
        log.close()
        if code != 0:
            for _, _, _, other, _ in running:
                other.wait()
            raise UserError('training %s failed (exit %d; see %s/train.log); rerun to resume'
                            % (preset, code, os.path.relpath(out, ROOT)))
        folders[preset] = weights.export(preset, out)
        print('finished %s; committed to %s' % (preset, os.path.relpath(folders[preset], ROOT)),
              flush=True)
    return folders


def strip_maps(obj):
    return {k: v for k, v in obj.items() if k != 'maps'}


def previous(key):
    """`key` of the earlier record, kept when this run cannot measure it again."""
    path = os.path.join(OUT, 'chapter2.json')
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f).get(key)
    return None


def training_progress(preset, images):
    """chapter2.measure_progress of the committed `preset` network's own training run, when
    runs/counting/<preset> holds it with its snapshots (same model.npz); else the earlier
    record's."""
    run = os.path.join(runs_root('counting'), preset)
    entry = weights.read_manifest().get(preset)
    model = os.path.join(run, 'model.npz')
    if entry and os.path.exists(model) and sha256(model) == entry['sha256']['model.npz'] \
            and chapter2.snapshot_epochs(run):
        print('measuring the training progress of %s' % preset, flush=True)
        return {'preset': preset, 'epochs': chapter2.measure_progress(run, images)}
    kept = previous('training_progress')
    return kept if kept and kept['preset'] == preset else None


def build_parser():
    p = Parser(prog='counting/make_results.py', description=__doc__.splitlines()[0])
    p.add_argument('--thesis-figures', metavar='DIR',
                   help="folder holding the thesis's figure files (putasideall/ or its contents)")
    p.add_argument('--from-weights', action='store_true',
                   help='use only the committed networks; never train')
    p.add_argument('--images', type=positive_int, default=20,
                   help='held-out images measured per network (default %(default)s)')
    p.add_argument('--shortcut-images', type=positive_int, default=200,
                   help='images per sampler mode and per size end (default %(default)s)')
    p.add_argument('--jobs', type=positive_int, default=2,
                   help='networks trained at once, one CPU thread each (default %(default)s)')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    root = thesis_figures.root_of(args.thesis_figures) if args.thesis_figures else None
    folders = network_folders(list(PRESETS), args.from_weights, args.jobs)
    nets, maps = {}, {}
    for preset, folder in folders.items():
        settings = training.resolve_settings(preset)
        training.ensure_dataset(training.preset_dataset_folder(preset), settings['dataset'], 2)
        print('measuring %s' % preset, flush=True)
        nets[preset], maps[preset], _ = chapter2.measure_network(folder, images=args.images)
        nets[preset]['settings'] = {k: settings[k] for k in (
            'network', 'activation', 'batch_renorm', 'optimizer', 'lr', 'epochs', 'batch_size',
            'input_scale')}
        nets[preset]['settings']['one_scale_per_image'] = \
            settings['dataset']['limit_scale_resampling']
        nets[preset]['figure'] = PRESETS[preset]
        nets[preset]['weights'] = weights.read_manifest()[preset]
    print('measuring the pixel-count shortcut', flush=True)
    spec = defaults.TRAIN_PRESETS['small']['dataset']
    shortcut = chapter2.measure_shortcut(folders, spec, spec['shape_limit'],
                                         images=args.shortcut_images)
    print('measuring the stride-grid control', flush=True)
    control = chapter2.stride_grid_control()
    progress = training_progress('small', args.images)
    thesis = thesis_figures.measure(root) if root else previous('thesis_files')
    made_by = provenance(seed=defaults.TRAIN['seed'])
    made_by['command'] = shown([os.path.join(ROOT, 'counting', 'make_results.py')] +
                               (['--thesis-figures', '<thesis figures folder>'] if root else []) +
                               (['--from-weights'] if args.from_weights else []) +
                               (['--images', args.images] if args.images != 20 else []))
    record = {'networks': nets, 'shortcut': shortcut, 'stride_grid_control': control,
              'training_progress': progress,
              'thesis_files': thesis,
              'thesis_files_measured_now': root is not None, 'made_by': made_by}
    os.makedirs(OUT, exist_ok=True)
    write_json(os.path.join(OUT, 'chapter2.json'), record)
    figures.figure_2_3(os.path.join(OUT, 'fig2_3.png'), maps['small'], root)
    figures.figure_2_4(os.path.join(OUT, 'fig2_4.png'), maps['small'], root)
    for figure, preset, title in (
            ('2.5', 'small-relu', 'Figure 2.5: ReLU, a scale per shape'),
            ('2.6', 'small-softplus', 'Figure 2.6: SoftPlus, a scale per shape'),
            ('2.7', 'small-sigmoid-per-shape',
             'Figure 2.7: sigmoid + Batch Renormalization, a scale per shape')):
        figures.figure_activation(os.path.join(OUT, 'fig%s.png' % figure.replace('.', '_')),
                                  figure, maps[preset], root,
                                  title + '. Left: ours (%s); right: the thesis' % preset)
    write_text(os.path.join(OUT, 'chapter2.md'), report(record))
    print('wrote %s' % os.path.relpath(OUT, ROOT))


def fmt(summary, digits=2, pct=False):
    if summary is None:
        return '-'
    if isinstance(summary, dict):
        scale = 100 if pct else 1
        return '%.*f [%.*f-%.*f]' % (digits, scale * summary['median'], digits,
                                     scale * summary['q25'], digits, scale * summary['q75'])
    return '%.*f' % (digits, 100 * summary if pct else summary)


def report(record):
    """chapter2.md: the claims of thesis 2.2, ours beside the thesis's files."""
    nets, thesis, shortcut = record['networks'], record['thesis_files'], record['shortcut']
    lines = [record_title('# Thesis chapter 2, measured: our analogue networks beside the '
                          'thesis\'s figures', record['made_by']['commit']),
             '', 'Made by `%s` at commit `%s` on %s, %s. Every number below is in '
             '`chapter2.json`; the measures are defined in `counting/figure_measures.py` and '
             '`counting/chapter2.py`. Ours: the first %d held-out images of each network, '
             'median [quartiles] over images. The thesis: its own 1000 px figure files.'
             % (record['made_by']['command'], record['made_by']['commit'],
                record['made_by']['device'], record['made_by']['date'],
                len(next(iter(nets.values()))['images'])), '']
    lines += ['## Counting (held-out split)', '',
              '| preset | stands for | MAE | predict-the-mean MAE | ratio | exact (both types) '
              '| epochs | train time |', '|---|---|---|---|---|---|---|---|']
    for preset, n in nets.items():
        c = n['counting']
        lines.append('| %s | %s | %.3f | %.3f | %.2f | %.1f%% | %d | %.0f s |' % (
            preset, n['figure'], c['mae'], c['baseline_mae'], c['mae'] / c['baseline_mae'],
            100 * c['exact_accuracy_all_types'], n['settings']['epochs'],
            n['weights']['train_seconds']))
    lines += ['', '## Where the saliency lies (Figure 2.3; 2.5-2.7)', '',
              'Mean saliency in each region over the background\'s (edge band: 1 px at 96 px, '
              '4 px at 1000 px), the share of all saliency on the edge band and corners, and '
              'the stride grid (phase contrast at the first stride period over that at the '
              'neighbouring periods; about 1 means no grid).', '',
              '| maps | edge | corners | interior | share on edges + corners | stride grid |',
              '|---|---|---|---|---|---|']
    if thesis:
        for i, row in enumerate(thesis['2.3/2.4']):
            r = row['regions']
            lines.append('| thesis Fig 2.3 image %d | %.2f | %.2f | %.2f | %.1f%% | '
                         '%.0f (period 3) |'
                         % (i + 1, r['edge']['relative_to_background'],
                            r['corners']['relative_to_background'],
                            r['interior']['relative_to_background'],
                            100 * (r['edge']['share'] + r['corners']['share']),
                            row['stride_grid']['3']))
        for figure in ('2.5', '2.6', '2.7'):
            for i, row in enumerate(thesis[figure]):
                lines.append('| thesis Fig %s image %d | (no image file) | | | | %.0f (period 3) |'
                             % (figure, i + 1, row['stride_grid']['3']))
    for preset, n in nets.items():
        r = n['regions']
        first = sorted(n['stride_grid'], key=int)[0]
        lines.append('| ours: %s | %s | %s | %s | %s | %s (period %s) |' % (
            preset, fmt(r['edge']['relative_to_background']),
            fmt(r['corners']['relative_to_background']),
            fmt(r['interior']['relative_to_background']),
            '%.1f%%' % (100 * (r['edge']['share']['median'] + r['corners']['share']['median'])),
            fmt(n['stride_grid'][first]), first))
    control = record.get('stride_grid_control')
    if control:
        lines += ['', 'Where the grid comes from: %s untrained (seed %d), plain stride-2 kernels '
                  'give a stride grid of %s at period %d, box-smoothed ones %s (median '
                  '[quartiles] over %d images).' % (
                      control['network'], control['untrained_seed'],
                      fmt(control['plain strides']), control['period'],
                      fmt(control['box-smoothed strides']),
                      control['box-smoothed strides']['n'])]
    progress = record.get('training_progress')
    if progress:
        lines += ['', '## Why the 2.3 analogue\'s saliency lies off the edges: training '
                  'progress', '',
                  'The same measures on the snapshots of `%s`\'s own training run (held-out '
                  'MAE over all its held-out images; regions over the first %d): if edge '
                  'saliency comes with counting skill, it rises as the MAE falls.'
                  % (progress['preset'], next(iter(progress['epochs'].values()))['regions']
                     ['edge']['relative_to_background']['n']), '',
                  '| epoch | MAE | edge | corners | interior |', '|---|---|---|---|---|']
        for epoch, p in sorted(progress['epochs'].items(), key=lambda item: int(item[0])):
            lines.append('| %s | %.3f | %s | %s | %s |' % (
                epoch, p['counting']['mae'], *(fmt(p['regions'][r]['relative_to_background'])
                                               for r in ('edge', 'corners', 'interior'))))
    lines += ['', '## The selected pixel sets (Figures 2.4, 2.6, 2.7; threshold 5e-10)', '',
              'Size as % of the image; shape / outline covered: share of the nearest shape\'s '
              'pixels / of its edge band in the set; on shape, in band, between: shares of the '
              'set.', '',
              '| sets | size % | shape covered | outline covered | on shape | in band | '
              'between shapes |', '|---|---|---|---|---|---|---|']
    if thesis:
        for figure in ('2.3/2.4', '2.6', '2.7'):
            for i, row in enumerate(thesis[figure]):
                for s in row['sets']:
                    lines.append('| thesis Fig %s image %d step %d | %.2f | %s | %s | %s | %s '
                                 '| %s |'
                                 % ('2.4' if figure == '2.3/2.4' else figure, i + 1, s['step'],
                                    100 * s['fraction'],
                                    *(fmt(s.get(k)) if s.get(k) is not None else '-'
                                      for k in ('shape_covered', 'outline_covered', 'on_shape',
                                                'in_band', 'between'))))
    for preset, n in nets.items():
        s = n.get('sets')
        if not s:
            lines.append('| ours: %s | second derivative zero (largest importance %s) | | | | '
                         '| |' % (preset, fmt(n['first_importance_max'], 3)))
            continue
        lines.append('| ours: %s, all steps (%d sets) | %s | %s | %s | %s | %s | %s |' % (
            preset, s['sets'], fmt(s['fraction'], pct=True), fmt(s['shape_covered']),
            fmt(s['outline_covered']), fmt(s['on_shape']), fmt(s['in_band']),
            fmt(s['between'])))
        lines.append('| ours: %s, size by step 1 / 2 / 3 | %s | | | | | |' % (
            preset, ' / '.join(fmt(s['fraction_by_step'][k], pct=True)
                               for k in ('1', '2', '3'))))
    sweeps = {p: n['first_set_fraction_by_threshold'] for p, n in nets.items()
              if n.get('first_set_fraction_by_threshold')}
    if sweeps:
        thresholds = list(next(iter(sweeps.values())))
        lines += ['', 'The first set\'s size (% of the image, median over images) against the '
                  'threshold; the thesis used 5e-10 with derivatives of raw 0-255 pixels at '
                  '1000 px:', '', '| network | ' + ' | '.join(thresholds) + ' |',
                  '|---' * (len(thresholds) + 1) + '|']
        for preset, sweep in sweeps.items():
            lines.append('| %s | ' % preset + ' | '.join(
                '%.2f' % (100 * sweep[t]['median']) if sweep[t] else '-' for t in thresholds)
                + ' |')
    lines += ['', '## The pixel-count shortcut (thesis 2.2.3)', '',
              'Total shape area as a predictor of the total count (least squares, %d fresh '
              'images per sampler mode):' % shortcut['images'], '',
              '| sampler | R^2 | MAE (shapes) |', '|---|---|---|']
    for mode, fit in shortcut['area_fit'].items():
        lines.append('| %s | %.3f | %.2f |' % (mode.replace('_', ' '), fit['r2'], fit['mae']))
    lines += ['', 'Each network\'s mean signed error of the total count when every shape has '
              'the smallest scale (%d) or the largest (%d); a pixel counter under-counts small '
              'shapes and over-counts large ones.' % (shortcut['scales']['smallest'],
                                                      shortcut['scales']['largest']), '',
              '| network | trained on | error, smallest | error, largest | MAE smallest / '
              'largest |', '|---|---|---|---|---|']
    for preset, b in shortcut['size_bias'].items():
        lines.append('| %s | %s | %+.2f | %+.2f | %.2f / %.2f |' % (
            preset, 'one scale per image' if nets[preset]['settings']['one_scale_per_image']
            else 'a scale per shape', b['smallest']['mean_signed_error'],
            b['largest']['mean_signed_error'], b['smallest']['mae'], b['largest']['mae']))
    lines += ['', 'Networks: `results/weights/counting/` (manifest with SHA-256, the commit and '
              'device that trained each).', '']
    return '\n'.join(lines)


if __name__ == '__main__':
    run_main(main)
