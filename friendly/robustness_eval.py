"""Robustness of the committed networks under reliable attacks (beyond the thesis).

    python friendly/robustness_eval.py                        # writes runs/friendly/robustness/
    python friendly/robustness_eval.py --jobs 2 --convergence --results results/robustness

Reads the committed weights (results/weights/friendly, checksums first): the default seed of
each victim S, RS, A, GMR, GMRES, and the black-box source (S with seed 2); PD only where its
weights are in the store, on a subset. For each Batch Renormalization test mode ('batch', the
thesis's, and 'running'), on the MNIST test images:

    the thesis's numbers (Table 3.2, section 3.3): clean, FGSM white-box and black-box, eps 77,
        exactly as friendly/evaluate.py measures them;
    beyond the thesis: APGD on the margin and on the cross-entropy of the pre-activation
        outputs and targeted APGD (APGD-T) (Croce & Hein 2020), the same steered by the
        gradients of surrogates (friendly/surrogates.py: tempered sigmoids, the thesis GPU's
        sigmoid arithmetic, float64; every image scored on the real network), Square Attack
        (Andriushchenko et al. 2020), transfer of APGD
        examples from the source; the worst case per image over all of them, the attacks run
        cheapest first and, where images are independent, each only on the images still
        robust (AutoAttack's schedule); accuracy against eps on a subset; and the checks of
        Carlini et al. 2019 (see friendly/robustness.py). With --convergence, also the check
        that doubling every budget moves the worst case by at most half a point at every eps
        of the curve: it validates the default budgets, and costs about twice the rest.

Writes robustness.md (a table per test mode, with the verdicts), robustness.json (the same
with provenance) and accuracy_vs_epsilon.png into --out, and into --results only when given.
Per-image results are cached in --out/cache, so a rerun (e.g. with --results) recomputes
nothing that is already there. Each network (with Batch Renormalization: each test mode) is
written into the record as soon as it is done, the rest listed as not evaluated yet; the same
command run again (same settings and attack code) takes those results from the record (--results,
else --out) and computes only what is missing, on this machine or another.
"""
import argparse
import os
import time

from friendly import mnist, robustness, robustness_record, weights
from friendly.defaults import EVALUATION, NETWORKS, PROTOCOL, SOURCE, VICTIMS
from friendly.networks import BN_MODES
from runkit.cli import (Parser, UserError, ending_pool, name_value_pairs, non_negative_int,
                        positive_int, run_main, worker_signals)
from runkit.devices import get_device
from runkit.provenance import git_commit, make_folder, provenance
from runkit.runs import runs_root


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
                        default=list(robustness_record.CURVE_EPSILONS),
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
    parser.add_argument('--convergence', action='store_true',
                        help='also check convergence: every column again with every budget '
                             'doubled at every eps of the curve (about twice the time of the '
                             'rest; the record is made with it)')
    parser.add_argument('--seed', type=int, default=0, help='seed of every random start')
    parser.add_argument('--chunk', type=positive_int, default=1000,
                        help='images per attack call (a multiple of 200)')
    parser.add_argument('--jobs', type=positive_int, default=1,
                        help='networks (and test modes) evaluated at once, each in its own '
                             'process sharing the cache')
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
    seeds = name_value_pairs(args.seed_for, '--seed-for', VICTIMS, value='SEED')  # one line if bad
    device = get_device(args.device)
    folders = [args.out] + ([args.results] if args.results else [])
    for folder in folders:
        make_folder(folder)   # a one-line error now, not after the attacks
    started, commit = time.time(), git_commit()   # before the record makes the tree dirty
    source_entry = load_source(args, device)[1]   # a missing source is one line, before any work
    x_all, _ = mnist.test_set(args.test_subset, args.mnist_dir)
    budgets = budgets_of(args)
    settings = {'epsilon': args.epsilon, 'curve_epsilons': epsilons, 'columns': columns,
                'budgets': budgets, 'seed': args.seed, 'test_images': len(x_all),
                'subset': args.subset, 'pd_subset': args.pd_subset, 'bn_modes': args.bn_modes,
                'chunk': args.chunk, 'checks': robustness.CHECKS,
                'convergence': args.convergence,
                'code': robustness.code_version()}
    earlier = {} if args.no_cache else robustness_record.reusable(
        os.path.join(folders[-1], 'robustness.json'), settings)
    parts = robustness_record.parts(args.networks, args.bn_modes, args.jobs)
    manifest = weights.read_manifest(args.store)
    absent = {n for n in args.networks if weights.find_entry(
        manifest, n, seeds.get(n, NETWORKS[n].seed), args.protocol) is None}
    done, counts = [], [0, 0]

    def write(left):
        """The record of the parts done so far (all of them when `left` is empty)."""
        networks, skipped = robustness_record.merge(done, args.networks, args.bn_modes)
        if not networks and not left:
            raise UserError('no victim of %s is in %s' % (', '.join(args.networks),
                                                          args.store))
        prov = provenance(args.device, commit=commit,
                          seeds={n: r['seed'] for n, r in networks.items()},
                          source={'file': source_entry['file'], 'seed': source_entry['seed'],
                                  'sha256': source_entry['sha256']},
                          epsilons=epsilons, budgets=budgets, attack_seed=args.seed,
                          wall_time_s=round(time.time() - started, 1),
                          cached_results_read=counts[0], results_computed=counts[1])
        document = robustness_record.document(settings, networks, skipped, prov,
                                              robustness_record.pending(left, absent))
        return robustness_record.write(document, args.out, args.results)

    left = list(parts)
    for part, networks, skipped, hits, computed in evaluate_parts(args, parts, earlier, commit):
        done.append((networks, skipped))
        counts[0] += hits
        counts[1] += computed
        left.remove(part)
        if left and networks:
            write(left)   # every part finished is in the record at once, should the run stop
    print('\n' + write([]))
    print('wrote %s' % ', '.join(os.path.join(f, n) for f in folders
                                 for n in robustness_record.FILES))


def load_source(args, device):
    """(the black-box source network, its store entry); a one-line error if it is missing."""
    source, entry = weights.load_stored(args.store, SOURCE, NETWORKS[SOURCE].seed,
                                        args.protocol, device)
    if source is None:
        raise UserError('the black-box source (%s, seed %d, protocol %s) is not in %s yet'
                        % (SOURCE, NETWORKS[SOURCE].seed, args.protocol, args.store))
    return source, entry


def budgets_of(args):
    return {'steps': args.steps, 'restarts': args.restarts, 'targets': args.targets,
            'target_restarts': args.target_restarts, 'queries': args.queries}


def evaluate_parts(args, parts, earlier, commit):
    """Yield (part, networks, skipped, cache hits, results computed) for each part of `parts` as it
    finishes: in turn in this process, or with --jobs N in N processes, each its own; each
    result computed says it was made at `commit` (read when the run began)."""
    if args.jobs > 1 and len(parts) > 1:
        # a fresh interpreter per worker (spawn): safe with CUDA, and its BLAS sized to its
        # share of the cores
        with ending_pool(min(args.jobs, len(parts)), worker_signals, 'spawn',
                         share_cores=True) as pool:
            # the parts that start together begin making the source's examples at different
            # images (Evaluator's begin), each reading the others' from the cache
            yield from pool.imap_unordered(evaluate_part, [
                (args, part, earlier, commit, i % args.jobs / args.jobs)
                for i, part in enumerate(parts)])
    else:
        evaluator = make_evaluator(args)   # one for all: examples made on the source are kept
        for part in parts:
            yield evaluate_part((args, part, earlier, commit, 0), evaluator)


def make_evaluator(args, prefix='', begin=0):
    """The evaluator of a run; `prefix` starts each line it logs; `begin`: Evaluator's."""
    device = get_device(args.device)
    source, source_entry = load_source(args, device)
    cache = robustness.Cache(None if args.no_cache else os.path.join(args.out, 'cache'))
    return robustness.Evaluator(source, device, budgets_of(args), args.seed, cache,
                                args.chunk, source_id=source_entry['sha256'],
                                log=lambda line: print(prefix + line, flush=True),
                                begin=begin)


def evaluate_part(job, evaluator=None):
    """(part, networks, skipped, cache hits, results computed) of robustness_record.evaluate_store
    for one part (victims, test modes) of the evaluation. Without an `evaluator` (a worker of
    --jobs N) each line logged names the part, as the workers' lines interleave."""
    args, part, earlier, commit, begin = job
    names, modes = part
    evaluator = evaluator or make_evaluator(
        args, '[%s] ' % ' '.join(names + (modes if len(modes) == 1 else [])), begin)
    hits, computed = evaluator.cache.hits, evaluator.computed
    x_all, t_all = mnist.test_set(args.test_subset, args.mnist_dir)
    networks, skipped = robustness_record.evaluate_store(
        evaluator, args.store, args.protocol, names, name_value_pairs(
            args.seed_for, '--seed-for', VICTIMS, value='SEED'), x_all, t_all, modes,
        args.epsilon, robustness.in_order(list(robustness.THESIS_COLUMNS) + args.attacks),
        sorted(set(args.epsilons) | {args.epsilon}), args.subset, args.pd_subset, earlier,
        commit, args.convergence)
    return (part, networks, skipped, evaluator.cache.hits - hits,
            evaluator.computed - computed)


if __name__ == '__main__':
    run_main(main)
