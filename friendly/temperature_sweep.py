"""Which temperature unmasks a network? APGD and APGD-T steered by one tempered surrogate at a
time (friendly/surrogates.py), beyond the thesis: the measurement behind defaults.TEMPERATURES.

    python friendly/temperature_sweep.py                  # S and GMR, eps 10 and 26, 500 images

For each committed network (the default seed), each eps and each temperature T (T = 1 is the
plain float64 copy): the accuracy after APGD (margin) and after APGD-T (targeted margin), both
steered by tempered_copy(net, T) and scored on the real network, and the robust accuracy left
by every attack of this and the earlier temperatures together (the per-image minimum).
Networks without Batch Renormalization, or in 'running' mode, so that images are independent.
Writes runs/friendly/temperature_sweep/temperature_sweep.md.
"""
import os

import friendly  # noqa: F401  (its Chainer compatibility patches before chainer loads)
import numpy as np

from friendly import attacks, mnist, surrogates, weights
from friendly.defaults import NETWORKS
from friendly.robustness import percent, score
from runkit.cli import Parser, UserError, positive_int, run_main
from runkit.devices import get_device
from runkit.provenance import make_folder, provenance, record_title, write_text
from runkit.runs import runs_root

MODE = 'running'


def sweep(net, x, t, epsilon, temperatures, steps, restarts, targets, seed=0):
    """[(T, APGD accuracy, APGD-T accuracy, accuracy after every attack so far)], in %."""
    left = score(net, x, t, MODE)
    rows = []
    for temperature in temperatures:
        surrogate = surrogates.tempered_copy(net, temperature)
        row = [temperature]
        for name, options in (('apgd', {}), ('apgd_t', {'targets': targets,
                                                       'loss': 'margin_targeted'})):
            adv = attacks.ATTACKS[name](net, x, t, epsilon, MODE, steps=steps, restarts=restarts,
                                        rng=np.random.RandomState(seed), surrogate=surrogate,
                                        **options)
            right = score(net, adv, t, MODE)
            left &= right
            row.append(percent(right))
        rows.append(row + [percent(left)])
    return rows


def build_parser():
    p = Parser(prog='friendly/temperature_sweep.py', description=__doc__.splitlines()[0])
    p.add_argument('--networks', nargs='+', default=['S', 'GMR'], choices=list(NETWORKS))
    p.add_argument('--epsilons', nargs='+', type=positive_int, default=[10, 26])
    p.add_argument('--temperatures', nargs='+', type=float, default=[1, 10, 30, 100, 300])
    p.add_argument('--images', type=positive_int, default=500,
                   help='the first N test images (default %(default)s)')
    p.add_argument('--steps', type=positive_int, default=100)
    p.add_argument('--restarts', type=positive_int, default=1)
    p.add_argument('--targets', type=positive_int, default=3)
    p.add_argument('--device', default='@numpy')
    p.add_argument('--mnist-dir', default=None)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if any(t <= 0 for t in args.temperatures):
        raise UserError('temperatures must be positive')
    device = get_device(args.device)
    out = os.path.join(runs_root('friendly'), 'temperature_sweep')
    make_folder(out)
    x, t = mnist.test_set(args.images, args.mnist_dir)
    x, t = device.send(x), device.send(t)
    made = provenance(device)
    lines = [record_title('# Tempered surrogates, one temperature at a time', made['commit']), '',
             'APGD and APGD-T (%d steps, %d start(s), %d targets) steered by sigmoid(a/T) '
             'surrogates, scored on the real network, on the first %d test images (%s mode). '
             'Accuracy in %%; the last column: after every attack of this and the earlier '
             'rows.' % (args.steps, args.restarts, args.targets, len(x), MODE), '']
    for name in args.networks:
        net, _ = weights.load_stored(weights.STORE, name, NETWORKS[name].seed, 'thesis',
                                     device)
        if net is None:
            raise UserError('no committed %s network in %s' % (name, weights.STORE))
        for epsilon in args.epsilons:
            print('%s eps %d: T %s on %d test images' % (
                name, epsilon, ', '.join('%g' % T for T in args.temperatures), len(x)),
                flush=True)
            lines += ['## %s, eps %d' % (name, epsilon), '',
                      '| T | APGD | APGD-T | after every attack so far |', '|---|---|---|---|']
            for row in sweep(net, x, t, epsilon, args.temperatures, args.steps, args.restarts,
                             args.targets):
                lines.append('| %g | %.1f | %.1f | %.1f |' % tuple(row))
                print('%s eps %d T %g: APGD %.1f %%, APGD-T %.1f %%, so far %.1f %%'
                      % ((name, epsilon) + tuple(row)), flush=True)
            lines.append('')
    lines.append('Made by `%s` at commit `%s` on %s, %s.' % (made['command'], made['commit'],
                                                          made['device'], made['date']))
    write_text(os.path.join(out, 'temperature_sweep.md'), '\n'.join(lines) + '\n')
    print('wrote %s' % os.path.join(out, 'temperature_sweep.md'))


if __name__ == '__main__':
    run_main(main)
