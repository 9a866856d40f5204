"""Does GMRES collapse because of float32 saturation? The same seeds trained in the two sigmoid
arithmetics (train.py --arithmetic), epoch by epoch (beyond the thesis).

    python friendly/arithmetic_split.py --seeds 5 6 \
        --device-store results/gmres-seeds/weights/friendly \
        --cuda-store results/gmres-seeds-cuda/weights/friendly results/tables-cuda/weights/friendly \
        --out results/gmres-seeds-cuda

Both runs of a seed start from the same weights and see the same batches; they differ only in
how the sigmoids round. Per seed: the Elastic Sigmoid scale of each layer and the training
accuracy per epoch in both arithmetics, the first epoch at which the layer-1 scales differ by
more than SPLIT (where the paths split), and each run's collapse verdict (tables.collapse).
Writes <out>/arithmetic_split.md and arithmetic_split.png.
"""
import argparse
import os

import friendly  # noqa: F401  (its Chainer compatibility patches before chainer loads)

from friendly import tables, training, weights
from runkit.cli import Parser, UserError, positive_int, run_main
from runkit.provenance import atomic_write, make_folder, provenance, record_title, write_text

SPLIT = 0.01          # layer-1 scales further apart than this: the paths have split
JUMP = 0.3            # the layer-1 scale rising this much in one epoch: the jump before collapse
ARITHMETICS = ('device', 'cuda')


def log_of(seed, arithmetic, stores=(None,)):
    """The training log of GMRES `seed` in `arithmetic`, from the first of `stores` (None: the
    repository's) or run folder that holds it."""
    settings = training.settings_for('GMRES', seed=seed, arithmetic=arithmetic)
    for store in stores:
        found = weights.locate(settings, store)
        if found is not None:
            return found.training_log()
    raise UserError('no finished GMRES seed %d run in the %s arithmetic (stores %s, or %s); '
                    'train it with friendly/train.py GMRES --seed %d%s'
                    % (seed, arithmetic, ', '.join(s or weights.STORE for s in stores),
                       weights.run_folder(settings), seed,
                       ' --arithmetic cuda' if arithmetic == 'cuda' else ''))


def split_epoch(a, b, key='main/elastic_scale_1', tolerance=SPLIT):
    """First epoch at which the two logs' `key` differ by more than `tolerance`, else None."""
    for ea, eb in zip(a, b):
        if abs(ea[key] - eb[key]) > tolerance:
            return ea['epoch']
    return None


def collapse_epoch(log):
    """First epoch whose training accuracy is more than tables.COLLAPSE_DROP below the best
    before it, else None."""
    best = 0.0
    for e in log:
        if e['main/accuracy'] < best - tables.COLLAPSE_DROP:
            return e['epoch']
        best = max(best, e['main/accuracy'])
    return None


def jump_epoch(log, key='main/elastic_scale_1', rise=JUMP):
    """First epoch whose `key` is more than `rise` above the previous epoch's, else None."""
    for before, e in zip(log, log[1:]):
        if e[key] - before[key] > rise:
            return e['epoch']
    return None


def compare(logs):
    """{seed: summary} from {seed: {arithmetic: log}}."""
    out = {}
    for seed, pair in logs.items():
        out[seed] = {'split_epoch': split_epoch(pair['device'], pair['cuda']),
                     'epochs': {a: len(pair[a]) for a in ARITHMETICS},
                     'collapse_epoch': {a: collapse_epoch(pair[a]) for a in ARITHMETICS},
                     'jump_epoch': {a: jump_epoch(pair[a]) for a in ARITHMETICS},
                     'collapse': {a: tables.collapse(pair[a]) for a in ARITHMETICS}}
    return out


def plot(logs, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(logs), figsize=(5 * len(logs), 3.6), squeeze=False)
    for ax, (seed, pair) in zip(axes[0], logs.items()):
        for arithmetic, style in (('device', '-'), ('cuda', '--')):
            log = pair[arithmetic]
            epochs = [e['epoch'] for e in log]
            ax.plot(epochs, [e['main/elastic_scale_1'] for e in log], 'C0' + style,
                    label='s layer 1, %s' % arithmetic)
            ax.plot(epochs, [100 * e['main/accuracy'] / 50 for e in log], 'k' + style,
                    label='train acc. / 50 %%, %s' % arithmetic)
        ax.set_title('GMRES seed %d' % seed)
        ax.set_xlabel('epoch')
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format='png'))
    plt.close(fig)


def markdown(result, logs, prov):
    lines = [record_title('# GMRES in the two sigmoid arithmetics (beyond the thesis)',
                          prov['commit']), '',
             'Made by `%s` at commit `%s` on %s, %s. Per seed, the same initial weights and '
             'batches trained with the device\'s own sigmoid (numpy float32 tanh: exactly 0 '
             'below x = -20) and with Chainer\'s CUDA sigmoid (tanh in float64, rounded once: '
             'nonzero down to x = -38). A run collapsed when its last epoch\'s training accuracy '
             'is more than %d points below its best.' % (prov['command'], prov['commit'],
                                                          prov['device'], prov['date'],
                                                          100 * tables.COLLAPSE_DROP), '',
             'The layer-1 scale "jumps" when it rises by more than %.1f in one epoch.' % JUMP,
             '', '| seed | layer-1 scales split at epoch | layer-1 scale jumps at epoch: device / '
             'cuda | device: epochs, peak -> final train acc., collapsed (from epoch) | cuda: '
             'epochs, peak -> final train acc., collapsed (from epoch) |', '|---|---|---|---|---|']
    for seed, r in result.items():
        cells = []
        for a in ARITHMETICS:
            c = r['collapse'][a]
            cells.append('%d, %.1f %% -> %.1f %%, %s' % (
                r['epochs'][a], 100 * c['peak_training_accuracy'],
                100 * c['final_training_accuracy'],
                '**yes** (%s)' % r['collapse_epoch'][a] if c['collapsed'] else 'no'))
        lines.append('| %d | %s | %s / %s | %s | %s |' % (
            seed, r['split_epoch'] or 'never', r['jump_epoch']['device'] or 'never',
            r['jump_epoch']['cuda'] or 'never', *cells))
    lines += ['', 'Layer-1 Elastic Sigmoid scale s (epoch mean) and training accuracy, both '
              'arithmetics, to two epochs after the later collapse, jump or split:', '']
    for seed, pair in logs.items():
        r = result[seed]
        marks = [e for e in list(r['collapse_epoch'].values()) + list(r['jump_epoch'].values())
                 + [r['split_epoch']] if e]
        stop = max(marks or [10]) + 2
        lines += ['GMRES seed %d:' % seed, '', '| epoch | s device | s cuda | acc. device | '
                  'acc. cuda |', '|---|---|---|---|---|']
        for ed, ec in zip(pair['device'][:stop], pair['cuda'][:stop]):
            lines.append('| %d | %.4f | %.4f | %.1f %% | %.1f %% |' % (
                ed['epoch'], ed['main/elastic_scale_1'], ec['main/elastic_scale_1'],
                100 * ed['main/accuracy'], 100 * ec['main/accuracy']))
        lines.append('')
    lines.append('Plot: arithmetic_split.png.')
    return '\n'.join(lines) + '\n'


def main():
    parser = Parser(prog='friendly/arithmetic_split.py', description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seeds', nargs='+', type=positive_int, default=[5, 6])
    parser.add_argument('--device-store', nargs='+', default=[None], metavar='STORE',
                        help='weights stores of the device-arithmetic runs, searched in order '
                        '(default: the repository\'s; run folders are searched too)')
    parser.add_argument('--cuda-store', nargs='+', default=[None], metavar='STORE',
                        help='weights stores of the CUDA-arithmetic runs, searched in order')
    parser.add_argument('--out', default=os.path.join('runs', 'friendly', 'arithmetic_split'),
                        help='folder for arithmetic_split.md and .png (default %(default)s)')
    args = parser.parse_args()
    prov = provenance()   # before anything is written: a clean tree stays clean in the record
    logs = {s: {'device': log_of(s, 'device', args.device_store),
                'cuda': log_of(s, 'cuda', args.cuda_store)} for s in args.seeds}
    result = compare(logs)
    out = make_folder(args.out)
    plot(logs, os.path.join(out, 'arithmetic_split.png'))
    text = markdown(result, logs, prov)
    write_text(os.path.join(out, 'arithmetic_split.md'), text)
    print(text)
    print('wrote %s/arithmetic_split.md and arithmetic_split.png' % out)


if __name__ == '__main__':
    run_main(main)
