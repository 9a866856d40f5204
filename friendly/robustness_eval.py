"""Robustness of the committed networks under reliable attacks (beyond the thesis).

    python friendly/robustness_eval.py                        # writes runs/friendly/robustness/
    python friendly/robustness_eval.py --queries 5000 --results results/robustness   # final table

Reads the committed weights (results/weights/friendly, checksums first): the default seed of
each victim S, RS, A, GMR, GMRES, and the black-box source (S with seed 2); PD only where its
weights are in the store, on a subset. For each Batch Renormalization test mode ('batch', the
thesis's, and 'running'), on the MNIST test images:

    the thesis's numbers (Table 3.2, section 3.3): clean, FGSM white-box and black-box, eps 77,
        exactly as friendly/evaluate.py measures them;
    beyond the thesis: APGD on the margin and on the cross-entropy of the pre-activation
        outputs and targeted APGD (APGD-T) (Croce & Hein 2020), the same steered by the
        gradients of the thesis GPU's sigmoid arithmetic (friendly/functions/cuda_sigmoid.py;
        scored on the real network), Square Attack (Andriushchenko et al. 2020), transfer of APGD
        examples from the source; the worst case per image over all of them, the attacks run
        cheapest first and, where images are independent, each only on the images still
        robust (AutoAttack's schedule); accuracy against eps on a subset; and the checks of
        Carlini et al. 2019, convergence under doubled budgets at every eps among them (see
        friendly/robustness.py).

Writes robustness.md (a table per test mode, with the verdicts), robustness.json (the same
with provenance) and accuracy_vs_epsilon.png into --out, and into --results only when given.
Per-image results are cached in --out/cache, so a rerun (e.g. with --results) recomputes
nothing that is already there.
"""
import argparse
import os
import shutil
import time


from friendly import mnist, robustness, weights
from friendly.defaults import EVALUATION, NETWORKS, PROTOCOL, SOURCE, THESIS_RESULTS, VICTIMS
from friendly.networks import BN_MODE_MEANING, BN_MODES
from runkit.cli import Parser, UserError, non_negative_int, positive_int, run_main
from runkit.devices import get_device
from runkit.provenance import (atomic_write, make_folder, provenance, record_title, write_json,
                               write_text)
from runkit.runs import runs_root

CURVE_EPSILONS = (0, 10, 26, 51, 77, 128, 179, 255)
FILES = ('robustness.md', 'robustness.json', 'accuracy_vs_epsilon.png')
SUBSET_ONLY = ('PD',)   # too slow for the whole test set on a CPU: always on --pd-subset


def parse_seeds(pairs):
    out = {}
    for pair in pairs or []:
        name, _, value = pair.partition('=')
        if name not in VICTIMS or not value.isdigit():
            raise UserError('bad --seed-for %r: expected NAME=SEED with NAME one of %s'
                            % (pair, ', '.join(VICTIMS)))
        out[name] = int(value)
    return out


class CountingCache(robustness.Cache):
    """The per-image cache, counting what this run read back and what it computed (said in the
    record, so that a table rebuilt from the cache does not pass for a fast computation)."""

    def __init__(self, folder):
        super().__init__(folder)
        self.hits = self.misses = 0

    def get(self, key):
        value = super().get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value


def main():
    parser = Parser(prog='friendly/robustness_eval.py', description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--networks', nargs='+', default=list(VICTIMS), choices=VICTIMS,
                        metavar='NAME', help='victims (default: %s; absent ones are skipped)'
                        % ' '.join(VICTIMS))
    parser.add_argument('--seed-for', nargs='+', metavar='NAME=SEED',
                        help='evaluate another seed of a victim, e.g. GMRES=4 (default: each '
                             "network's default seed)")
    parser.add_argument('--store', default=weights.STORE,
                        help='folder of committed weights with manifest.json')
    parser.add_argument('--protocol', default='thesis',
                        help='training protocol of the weights to read (default: thesis)')
    parser.add_argument('--bn-modes', nargs='+', default=list(BN_MODES), choices=BN_MODES,
                        help="Batch Renormalization test modes (default both; 'batch' is the "
                             "thesis's)")
    parser.add_argument('--epsilon', type=non_negative_int, default=PROTOCOL['epsilon'],
                        help='L-inf radius of the main table, pixel units (thesis: 77)')
    parser.add_argument('--epsilons', nargs='+', type=non_negative_int,
                        default=list(CURVE_EPSILONS),
                        help='radii of the accuracy-vs-eps curve (must include 255 for the '
                             'unbounded check)')
    parser.add_argument('--test-subset', type=positive_int,
                        help='first N test images only (default: all 10,000)')
    parser.add_argument('--subset', type=positive_int, default=1000,
                        help='test images of the curve and the convergence check')
    parser.add_argument('--pd-subset', type=positive_int, default=200,
                        help='test images for PD (a CPU needs minutes per 200)')
    parser.add_argument('--steps', type=positive_int, default=EVALUATION['steps'],
                        help='APGD iterations of every APGD column (transfer included; '
                             'default %(default)s)')
    parser.add_argument('--restarts', type=positive_int, default=EVALUATION['restarts'],
                        help='random starts of the untargeted APGD columns (default '
                             '%(default)s)')
    parser.add_argument('--targets', type=positive_int, default=EVALUATION['targets'],
                        help='APGD-T target classes, highest clean logits first (at most 9; '
                             'default %(default)s)')
    parser.add_argument('--target-restarts', type=positive_int,
                        default=EVALUATION['target_restarts'],
                        help='APGD-T random starts per target (default %(default)s)')
    parser.add_argument('--queries', type=positive_int, default=EVALUATION['queries'],
                        help='Square Attack queries per image (default %(default)s)')
    parser.add_argument('--attacks', nargs='+', default=list(robustness.COLUMNS),
                        choices=list(robustness.COLUMNS),
                        help='columns to run, in this order whatever the order given (the '
                             'thesis\'s FGSM columns always run)')
    parser.add_argument('--seed', type=int, default=0, help='seed of every random start')
    parser.add_argument('--chunk', type=positive_int, default=1000,
                        help='images per attack call (a multiple of 200)')
    parser.add_argument('--device', default='@numpy', help="'@numpy' or '@cupy:0'")
    parser.add_argument('--out', default=os.path.join(runs_root('friendly'), 'robustness'),
                        help='output folder (default runs/friendly/robustness)')
    parser.add_argument('--results', help='also write the three result files here, e.g. '
                        'results/robustness')
    parser.add_argument('--no-cache', action='store_true', help='recompute everything')
    parser.add_argument('--mnist-dir', help='MNIST folder')
    args = parser.parse_args()
    if args.epsilon > 255 or max(args.epsilons) > 255:
        raise UserError('epsilons are pixel distances in 0..255')
    if args.chunk % robustness.EVAL_BATCH:
        raise UserError('--chunk must be a multiple of %d' % robustness.EVAL_BATCH)
    columns = robustness.in_order(list(robustness.THESIS_COLUMNS) + args.attacks)
    epsilons = sorted(set(args.epsilons) | {args.epsilon})
    seeds = parse_seeds(args.seed_for)
    device = get_device(args.device)
    for folder in [args.out] + ([args.results] if args.results else []):
        make_folder(folder)   # a one-line error now, not after the attacks
    started = time.time()

    source, source_entry = weights.load_stored(args.store, SOURCE, NETWORKS[SOURCE].seed,
                                               args.protocol, device)
    if source is None:
        raise UserError('the black-box source (%s, seed %d, protocol %s) is not in %s yet'
                        % (SOURCE, NETWORKS[SOURCE].seed, args.protocol, args.store))
    x_all, t_all = mnist.test_set(args.test_subset, args.mnist_dir)
    budgets = {'steps': args.steps, 'restarts': args.restarts, 'targets': args.targets,
               'target_restarts': args.target_restarts, 'queries': args.queries}
    cache = CountingCache(None if args.no_cache else os.path.join(args.out, 'cache'))
    evaluator = robustness.Evaluator(source, device, budgets, args.seed, cache, args.chunk,
                                     source_id=source_entry['sha256'],
                                     log=lambda line: print(line, flush=True))
    networks, skipped = {}, {}
    for name in args.networks:
        seed = seeds.get(name, NETWORKS[name].seed)
        victim, entry = weights.load_stored(args.store, name, seed, args.protocol, device)
        if victim is None:
            skipped[name] = 'seed %d (protocol %s) is not in the committed weights' % (
                seed, args.protocol)
            print('skipping %s: %s' % (name, skipped[name]), flush=True)
            continue
        n = min(args.pd_subset, len(x_all)) if name in SUBSET_ONLY else len(x_all)
        x, t = x_all[:n], t_all[:n]
        label = name if seed == NETWORKS[name].seed else '%s (seed %d)' % (name, seed)
        if entry['protocol'] != args.protocol:
            label += ' [%s]' % entry['protocol']
        if n < len(x_all):
            label += ' (first %d test images)' % n
        record = {'network': name, 'seed': seed, 'file': entry['file'],
                  'protocol': entry['protocol'],
                  'sha256': entry['sha256'], 'test_images': n,
                  'batch_renorm': robustness.depends_on_mode(victim),
                  'epochs_trained': entry.get('epochs_trained'),
                  'thesis_clean': THESIS_RESULTS['clean'].get(name),
                  'thesis_white_box_fgsm': THESIS_RESULTS['white_box_fgsm'].get(name),
                  'thesis_black_box_fgsm': THESIS_RESULTS['black_box_fgsm'].get(name),
                  'modes': {}}
        for mode in args.bn_modes:
            same = next((m for m in record['modes'] if not record['batch_renorm']), None)
            if same:
                record['modes'][mode] = dict(record['modes'][same], same_as=same)
                continue
            print('%s, Batch Renormalization %r, %d images' % (label, mode, n), flush=True)
            begun = time.time()
            result = robustness.evaluate_network(
                evaluator, victim, entry['sha256'], x, t, mode, args.epsilon, columns,
                epsilons, min(args.subset, n))
            result['seconds'] = round(time.time() - begun, 1)
            result['same_as'] = None
            record['modes'][mode] = result
        networks[label] = record
    if not networks:
        raise UserError('no victim of %s is in %s' % (', '.join(args.networks), args.store))

    settings = {'epsilon': args.epsilon, 'curve_epsilons': epsilons, 'columns': columns,
                'budgets': budgets, 'seed': args.seed, 'test_images': len(x_all),
                'subset': args.subset, 'pd_subset': args.pd_subset, 'bn_modes': args.bn_modes,
                'chunk': args.chunk, 'checks': robustness.CHECKS}
    prov = provenance(args.device, seeds={n: r['seed'] for n, r in networks.items()},
                      source={'file': source_entry['file'], 'seed': source_entry['seed'],
                              'sha256': source_entry['sha256']},
                      epsilons=epsilons, budgets=budgets, attack_seed=args.seed,
                      wall_time_s=round(time.time() - started, 1),
                      cached_results_read=cache.hits, results_computed=cache.misses)
    document = {'about': 'Robustness beyond the thesis: reliable attacks beside the thesis\'s '
                         'FGSM (friendly/robustness_eval.py).',
                'settings': settings, 'columns': {k: robustness.COLUMNS[k]._asdict()
                                                  for k in columns},
                'networks': networks, 'skipped': skipped, 'provenance': prov}
    text = markdown(document)
    print('\n' + text)
    folders = [args.out] + ([args.results] if args.results else [])
    write_json(os.path.join(args.out, 'robustness.json'), document)
    write_text(os.path.join(args.out, 'robustness.md'), text)
    plot(document, os.path.join(args.out, 'accuracy_vs_epsilon.png'))
    if args.results:
        for name in FILES:
            source_path = os.path.join(args.out, name)
            atomic_write(os.path.join(args.results, name),
                         lambda tmp, p=source_path: shutil.copyfile(p, tmp))
    print('wrote %s' % ', '.join(os.path.join(f, n) for f in folders for n in FILES))


def _cell(value):
    return '—' if value is None else '%.2f' % value


def _verdict(check):
    if 'flag' in check:
        return ('FLAGGED: ' if check['flag'] else '') + check['detail']
    if check['ok'] is None:
        return check['detail']
    return ('pass: ' if check['ok'] else 'FAIL: ') + check['detail']


def markdown(document):
    settings, networks = document['settings'], document['networks']
    columns = settings['columns']
    budgets = settings['budgets']
    lines = [
        record_title('# Robustness beyond the thesis: reliable attacks beside Table 3.2',
                     document['provenance']['commit']), '',
        'Accuracy (%%) on the MNIST test images at eps = %d (pixel units, 0–255; the thesis\'s '
        '0.3). The two FGSM columns are the thesis\'s attack (section 3.3, Table 3.2: one step '
        'on the squared distance of the outputs, Goodfellow et al. 2015), measured exactly as '
        'friendly/evaluate.py measures them; every other column is **beyond the thesis**: APGD '
        '(Croce & Hein 2020; %d steps, %d random start(s), step 2·eps halved at checkpoints, '
        'momentum 0.75) on the margin or the cross-entropy of the pre-activation outputs; '
        'targeted APGD (APGD-T, same paper; one run per target class, the %d classes with the '
        'highest clean logits besides the label, %d start(s) each, on the targeted margin '
        'z_t − z_y); the same two steered by surrogate gradients (**CUDA-sigmoid**: the '
        'network\'s own parameters with the thesis GPU\'s sigmoid arithmetic, '
        'friendly/functions/cuda_sigmoid.py, whose saturated units keep the gradient that numpy\'s '
        'float32 sigmoid rounds to 0; success and score always on the real network); Square '
        'Attack (Andriushchenko et al. 2020; %d queries, gradient-free); and APGD examples made '
        'on the black-box source and shown to the victim (transfer). All adversarial images '
        'have integer pixels in [0, 255] within the eps-ball. **Worst case**: an image counts '
        'only if it is classified correctly clean and after every attack (Carlini et al. 2019). '
        'The attacks run in the order of the columns, cheapest first; where images are '
        'independent (the \'running\' test mode, and networks without Batch Renormalization) '
        'each attack after the thesis\'s FGSM runs only on the images still robust, as '
        'AutoAttack does, and its column is the robust accuracy after it and every column '
        'before it (**cumulative**); in the \'batch\' test mode an image\'s output depends on '
        'its batch of 200, so every attack runs on every image and each column is that '
        'attack\'s own accuracy. Converged: every budget doubled (steps, restarts, targets, '
        'queries) moves the worst case by less than a point at every eps of the curve.' % (
            settings['epsilon'], budgets['steps'], budgets['restarts'], budgets['targets'],
            budgets['target_restarts'], budgets['queries']), '']
    if settings['test_images'] != 10000:
        lines += ['**Only the first %d test images.**' % settings['test_images'], '']
    for mode in settings['bn_modes']:
        lines += ['## Batch Renormalization %r: %s%s' % (
            mode, BN_MODE_MEANING[mode], ' — the thesis\'s test mode' if mode == 'batch'
            else ''), '']
        head = ['network', 'clean'] + [robustness.COLUMNS[c].label for c in columns] + [
            '**worst case**', 'eps 255: worst / FGSM', 'converged (largest change)',
            'gradient masking', 'zero gradient (%)']
        lines += ['| ' + ' | '.join(head) + ' |', '|---' * len(head) + '|']
        for label, record in networks.items():
            result = record['modes'].get(mode)
            if result is None:
                continue
            acc, checks = result['accuracy'], result['checks']
            curve = result['curve']
            if 255 in curve['epsilons']:
                k = curve['epsilons'].index(255)
                unbounded = '%s / %s%s' % (
                    _cell(curve['accuracy']['worst_case'][k]),
                    _cell(curve['accuracy'].get('white_box_fgsm', [None] * (k + 1))[k]),
                    '' if checks['unbounded']['ok'] else ' FAIL')
            else:
                unbounded = '—'
            conv = result['convergence']
            cumulative = result.get('schedule') == robustness.ROBUST_ONLY
            cells = [label, _cell(acc['clean'])] + [
                _cell(acc.get(c)) + (' ᶜ' if cumulative and c not in robustness.THESIS_COLUMNS
                                     and c in acc else '') for c in columns] + [
                '**%s**' % _cell(acc['worst_case']), unbounded,
                '%s (%+.2f)' % ('yes' if conv['converged'] else '**did not converge**',
                               conv['change_points']),
                '**flagged**' if checks['gradient_masking']['flag'] else 'no',
                '%.2f' % result['zero_gradient_percent']['squared_distance']]
            lines.append('| ' + ' | '.join(cells) + ' |')
        lines += ['', 'ᶜ cumulative: robust accuracy after this attack and every column before '
                  'it (robust-only schedule, images independent).', '',
                  'Checks (curve and convergence on the first %d images):' % min(
                      settings['subset'], settings['test_images']), '']
        for label, record in networks.items():
            result = record['modes'].get(mode)
            if result is None:
                continue
            same = ('' if record['batch_renorm'] else
                    ' (no Batch Renormalization: the same in every mode)')
            lines.append('- **%s**%s: %s' % (label, same, '; '.join(
                '%s — %s' % (name.replace('_', ' '), _verdict(check))
                for name, check in result['checks'].items())))
            if not result['convergence']['converged']:
                lines.append('  - **did not converge**: its worst case is an upper bound '
                             'that more steps, restarts, targets or queries still lower.')
        lines.append('')
    lines += ['Thesis Table 3.2 for comparison (percent, its own networks): ' + ', '.join(
        '%s %s / %s' % (r['network'], _cell(r['thesis_white_box_fgsm']),
                        _cell(r['thesis_black_box_fgsm']))
        for r in networks.values()) + ' (white-box / black-box FGSM).', '']
    if document['skipped']:
        lines += ['Skipped: ' + '; '.join('%s (%s)' % kv for kv in document['skipped'].items())
                  + '.', '']
    prov = document['provenance']
    reused = ''
    if prov.get('cached_results_read'):
        reused = ('; %d of %d per-image results read from the cache of an earlier run with the '
                  'same attack code, weights and settings' % (
                      prov['cached_results_read'],
                      prov['cached_results_read'] + prov['results_computed']))
    lines += ['Figure: `accuracy_vs_epsilon.png`. Made by: `%s` at commit `%s`, on %s, %s '
              '(%.0f s%s).' % (prov['command'], prov['commit'], prov['device'], prov['date'],
                               prov['wall_time_s'], reused), '']
    return '\n'.join(lines)


STYLES = {'white_box_fgsm': ('tab:blue', '-', 'o'), 'black_box_fgsm': ('tab:blue', ':', 'o'),
          'apgd': ('tab:red', '-', 's'), 'apgd_ce': ('tab:orange', '-', 's'),
          'apgd_t': ('tab:brown', '-', 'D'), 'apgd_cuda': ('tab:red', '--', 's'),
          'apgd_t_cuda': ('tab:brown', '--', 'D'),
          'square': ('tab:green', '-', '^'), 'transfer': ('tab:purple', ':', 'v'),
          'worst_case': ('black', '-', None)}


def plot(document, path):
    """Accuracy against eps: one panel per network and test mode, one curve per attack."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    modes = document['settings']['bn_modes']
    names = list(document['networks'])
    fig, axes = plt.subplots(len(modes), len(names), figsize=(max(3.2 * len(names) + 0.6, 9),
                                                               2.9 * len(modes) + 1.4),
                             squeeze=False, sharex=True, sharey=True)
    handles = {}
    for row, mode in enumerate(modes):
        for col, label in enumerate(names):
            ax = axes[row][col]
            result = document['networks'][label]['modes'].get(mode)
            record = document['networks'][label]
            ax.set_title('%s, %s statistics%s' % (
                label, 'batch' if mode == 'batch' else 'running',
                '' if record['batch_renorm'] else ' (no BN: same)'), fontsize=9)
            ax.grid(alpha=0.3)
            if result is None:
                continue
            curve = result['curve']
            for key, values in curve['accuracy'].items():
                if key == 'clean':
                    continue
                color, style, marker = STYLES.get(key, ('gray', '-', None))
                text = 'worst case' if key == 'worst_case' else \
                    robustness.COLUMNS[key].label
                line, = ax.plot(curve['epsilons'], values, color=color, linestyle=style,
                                marker=marker, markersize=3,
                                linewidth=2.2 if key == 'worst_case' else 1.2, label=text)
                handles[text] = line
            ax.axvline(document['settings']['epsilon'], color='gray', linewidth=0.8,
                       linestyle='--')
            ax.set_xlim(0, 255)
            ax.set_ylim(-2, 102)
            if row == len(modes) - 1:
                ax.set_xlabel('eps (pixels, 0-255)')
            if col == 0:
                ax.set_ylabel('accuracy (%)')
    fig.legend(list(handles.values()), list(handles), loc='lower center',
               ncol=min(len(handles), 4), fontsize=8, frameon=False)
    images = {r['modes'][m]['curve']['images'] for r in document['networks'].values()
              for m in r['modes']}
    fig.suptitle('MNIST test accuracy against the L-inf radius eps (first %s test images; '
                 'dashed: eps = %d)\nFGSM: the thesis\'s attack; the others: beyond the thesis; '
                 'worst case: correct after every attack'
                 % ('/'.join(str(i) for i in sorted(images)), document['settings']['epsilon']),
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.12 if len(handles) > 4 else 0.07, 1, 0.93))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format='png'))
    plt.close(fig)


if __name__ == '__main__':
    run_main(main)
