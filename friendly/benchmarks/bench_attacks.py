"""Time the attacks beyond the thesis: Square Attack, and the whole robustness evaluation of
friendly/robustness_eval.py measured on a subset and extrapolated to its default size.

    python friendly/benchmarks/bench_attacks.py              # report under runs/friendly/bench/
    python friendly/benchmarks/bench_attacks.py --images 500 --networks S RS
    python friendly/benchmarks/bench_attacks.py --results results/bench_attacks.md

Targets on a 2-core CPU: Square with 1,000 queries on 1,000 test images of S in at most 60 s;
the default evaluation (S, RS, A, GMR, GMRES; 10,000 test images; eps 77; both Batch
Renormalization test modes; curve on 1,000 images; without the convergence check, which
--convergence adds) in at most 30 minutes. The evaluation is run for real on the first --images
test images of every network found in the committed weights; its main table and zero-gradient
count scale with the number of images (so they are multiplied by 10,000 / images), the curve
and the convergence check run on 1,000 images whatever the test set. A network not in the
store yet is estimated from a measured one with the same Batch Renormalization (said so in the
report). Square's time depends on how
fast images fall (a misclassified image stops costing queries): it is timed at eps 77 and at
eps 10, where most images survive every query.
"""
import argparse
import os
import time

from friendly import attacks, mnist, robustness, robustness_record, weights
from friendly.benchmarks import benchmarking
from friendly.defaults import NETWORKS, PROTOCOL, SOURCE, SQUARE
from friendly.robustness_record import CURVE_EPSILONS
from runkit.cli import Parser, UserError, positive_int, run_main
from runkit.devices import get_device
from runkit.provenance import provenance, record_title, write_text

SQUARE_TARGET_S = 60.0
EVALUATION_TARGET_S = 30 * 60.0
DEFAULT_NETWORKS = ('S', 'RS', 'A', 'GMR', 'GMRES')
FULL_TEST_SET = 10000
CURVE_IMAGES = 1000


def time_square(net, x, t, epsilon, queries, device):
    xb, tb = device.send(x), device.send(t)
    started = time.perf_counter()
    adv = attacks.square(net, xb, tb, epsilon, 'batch', queries=queries,
                         rng=attacks.attack_rng(0, 'square', 0, epsilon),
                         group=robustness.EVAL_BATCH)
    seconds = time.perf_counter() - started
    survived = robustness.percent(robustness.score(net, adv, tb, 'batch'))
    return seconds, survived


def main():
    parser = Parser(prog='friendly/benchmarks/bench_attacks.py', description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', type=positive_int, default=1000,
                        help='test images the evaluation is timed on (a multiple of 200)')
    parser.add_argument('--networks', nargs='+', default=list(DEFAULT_NETWORKS),
                        choices=DEFAULT_NETWORKS, help='victims of the default evaluation')
    parser.add_argument('--queries', type=positive_int, default=SQUARE['queries'],
                        help='Square queries (the target is for 1,000)')
    parser.add_argument('--convergence', action='store_true',
                        help="time the evaluation with its convergence check "
                             "(robustness_eval.py --convergence), not the default")
    parser.add_argument('--skip-evaluation', action='store_true',
                        help='time Square only')
    parser.add_argument('--store', default=weights.STORE, help='committed weights folder')
    parser.add_argument('--protocol', default='thesis', help='training protocol of the weights')
    parser.add_argument('--device', default='@numpy', help="'@numpy' or '@cupy:0'")
    parser.add_argument('--results', help='write the report here (a .md file or a folder) '
                        'instead of runs/friendly/bench/')
    parser.add_argument('--mnist-dir', help='MNIST folder')
    args = parser.parse_args()
    if args.images % robustness.EVAL_BATCH:
        raise UserError('--images must be a multiple of %d' % robustness.EVAL_BATCH)
    device = get_device(args.device)
    path = benchmarking.report_path(args.results, 'bench_attacks.md')
    s_net, s_entry = weights.load_stored(args.store, 'S', NETWORKS['S'].seed, args.protocol,
                                         device)
    source, source_entry = weights.load_stored(args.store, SOURCE, NETWORKS[SOURCE].seed,
                                               args.protocol, device)
    if s_net is None or source is None:
        raise UserError('S and the source must be in %s (protocol %s)' % (args.store,
                                                                         args.protocol))
    x, t = mnist.test_set(max(args.images, 1000), args.mnist_dir)
    load_before = os.getloadavg()
    lines = ['# Attack benchmark (beyond the thesis)', '',
             'Load average (1, 5, 15 min) at the start: %.2f, %.2f, %.2f on %d cores: %s.'
             % (load_before + (os.cpu_count() or 0,) + (
                 'other work was running, so every figure is an upper bound'
                 if load_before[0] > 0.5 * (os.cpu_count() or 1) else 'an idle machine',)),
             '']

    # Square: 1,000 queries on 1,000 test images of S
    lines += ['## Square Attack, %d queries on the first 1,000 test images of S' % args.queries,
              '', '| eps | seconds | accuracy left (%) | target 60 s: ratio |', '|---|---|---|---|']
    for eps in (PROTOCOL['epsilon'], 10):
        seconds, left = time_square(s_net, x[:1000], t[:1000], eps, args.queries, device)
        lines.append('| %d | %.1f | %.2f | %.2f |' % (eps, seconds, left,
                                                       seconds / SQUARE_TARGET_S))
        print(lines[-1], flush=True)
    lines.append('')

    if not args.skip_evaluation:
        lines += evaluation(args, device, source, source_entry, x[:args.images],
                            t[:args.images])
    load_after = os.getloadavg()
    prov = provenance(args.device, load_average_start=load_before, load_average_end=load_after)
    lines[0] = record_title(lines[0], prov['commit'])
    lines += ['Load average at the end: %.2f, %.2f, %.2f.' % load_after, '',
              'Made by: `%s` at commit `%s`, on %s, %s.' % (
                  prov['command'], prov['commit'], prov['device'], prov['date']), '']
    text = '\n'.join(lines)
    print('\n' + text)
    write_text(path, text)
    print('wrote %s' % path)


def evaluation(args, device, source, source_entry, x, t):
    """Time robustness.evaluate_network per network and mode; extrapolate to the default."""
    # the default evaluation's budgets (defaults.EVALUATION), but for Square's queries
    evaluator = robustness.Evaluator(source, device, {'queries': args.queries},
                                     source_id=source_entry['sha256'],
                                     log=lambda line: None)
    columns = list(robustness.COLUMNS)
    n = len(x)
    subset = min(CURVE_IMAGES, n)
    scale_main = FULL_TEST_SET / n
    scale_subset = CURVE_IMAGES / subset
    lines = ['## The default robustness evaluation, timed on %d test images' % n, '',
             'Per network and test mode: seconds measured (main table on %d images, curve over '
             'eps %s and convergence on %d), then extrapolated to 10,000 test images (main '
             'and zero-gradient x %.1f, curve and convergence x %.1f). Networks without Batch '
             'Renormalization run once for both modes (their results do not depend on it). '
             'The first network also pays for the transfer examples made on the source, '
             'which every later one reuses.' % (n, ', '.join(str(e) for e in CURVE_EPSILONS),
                                                subset, scale_main, scale_subset), '',
             '| network | mode | main | curve | convergence | zero gradient | measured total '
             '| extrapolated |', '|---|---|---|---|---|---|---|---|']
    measured, estimates, per_attack = {}, [], []
    for name in args.networks:
        net, entry = weights.load_stored(args.store, name, NETWORKS[name].seed, args.protocol,
                                          device)
        if net is None:
            estimates.append(name)
            continue
        modes = ('batch', 'running') if robustness.depends_on_mode(net) else ('batch',)
        for mode in modes:
            result = robustness.evaluate_network(
                evaluator, net, entry['sha256'], x, t, mode, PROTOCOL['epsilon'], columns,
                CURVE_EPSILONS, subset, args.convergence)
            phase = dict(result['seconds_by_phase'])
            phase.setdefault('convergence', 0.0)
            total = sum(phase.values())
            full = ((phase['main'] + phase['zero_gradient']) * scale_main
                    + (phase['curve'] + phase['convergence']) * scale_subset)
            measured[(name, mode)] = (full, robustness.depends_on_mode(net))
            lines.append('| %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f |' % (
                name, mode if len(modes) > 1 else 'both', phase['main'], phase['curve'],
                phase['convergence'], phase['zero_gradient'], total, full))
            print(lines[-1], flush=True)
            costliest = sorted(result['seconds_by_column'].items(), key=lambda kv: -kv[1])
            per_attack.append('- %s, %s: %s' % (name, mode if len(modes) > 1 else 'both',
                                                ', '.join('%s %.1f' % kv for kv in costliest)))
    lines += ['', 'Measured seconds per attack (main table, curve and convergence together), '
              'the costliest first:', ''] + per_attack
    total = sum(v[0] for v in measured.values())
    notes = []
    for name in estimates:
        has_bn = NETWORKS[name].batch_renorm
        like = [(k, v[0]) for k, v in measured.items() if v[1] == has_bn]
        if not like:
            notes.append('%s: not in the store and no measured network has %s Batch '
                         'Renormalization, so it is left out of the total' % (
                             name, 'a' if has_bn else 'no'))
            continue
        per_mode = {}
        for (other, mode), seconds in like:
            per_mode.setdefault(mode, []).append(seconds)
        guess = sum(max(v) for v in per_mode.values())
        total += guess
        notes.append('%s: not in the store yet; counted as %.0f s, the slowest measured '
                     'network with %s Batch Renormalization' % (name, guess,
                                                                 'a' if has_bn else 'no'))
    lines += ['', 'Extrapolated default evaluation: **%.0f s (%.1f min)**, target 30 min: '
              'ratio %.2f.' % (total, total / 60, total / EVALUATION_TARGET_S), '']
    if measured:
        two = two_jobs_seconds(measured, args.networks)
        lines += ['With `robustness_eval.py --jobs 2` (the measured networks handed out as it '
                  'hands them out, each part to the first free worker): about %.0f s '
                  '(%.1f min), ratio %.2f.' % (two, two / 60, two / EVALUATION_TARGET_S), '']
    if notes:
        lines += ['- ' + note for note in notes] + ['']
    return lines


def two_jobs_seconds(measured, names):
    """Wall time of the measured evaluation run as `robustness_eval.py --jobs 2` runs it: its
    parts (robustness_record.parts) in order, each to the worker that is free first."""
    workers = [0.0, 0.0]
    for (name,), modes in robustness_record.parts(names, ['batch', 'running'], 2):
        seconds = sum(measured.get((name, m), (0,))[0] for m in modes)
        workers[workers.index(min(workers))] += seconds
    return max(workers)


if __name__ == '__main__':
    run_main(main)
