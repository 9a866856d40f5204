"""Reproduce thesis Tables 3.2 and 3.3 over several seeds (friendly/tables.py).

    python friendly/evaluate.py --only-available           # re-derive from the committed weights
    python friendly/evaluate.py --jobs 2                   # train what is missing (hours on a CPU)
    python friendly/evaluate.py --quick --jobs 2           # reduced protocol, minutes, labelled
    python friendly/evaluate.py --jobs 2 --results results \
        --recorded results/pd-h100-e20/tables.json:PD     # the record in results/

Each network comes from the committed weights (results/weights/friendly, checksums verified),
else from a finished run under runs/friendly/<protocol>/ with identical settings, else it is
trained there (interrupted runs resume exactly: rerun the same command). The tables are printed
and written to runs/friendly/tables/<protocol>[-<option>...]/, one folder per set of options
that changes them (tables_folder); only `--results DIR` writes elsewhere (the record:
DIR/tables.md, DIR/tables.json, and every network trained for it exported to
DIR/weights/friendly with its manifest). Progress: a line per network and step, with its time.
"""
import argparse
import json
import os
import time

from friendly import mnist, tables, training, weights
from friendly.defaults import NETWORKS, PROTOCOL, QUICK, SEEDS, SOURCE, THESIS_RESULTS, VICTIMS
from friendly.networks import ARITHMETICS, BN_MODE_MEANING, BN_MODES
from runkit.cli import Parser, UserError, positive_int, run_main
from runkit.devices import get_device
from runkit.provenance import make_folder, provenance, write_json, write_text
from runkit.runs import runs_root

DEFAULT_NETWORKS = ('S', 'RS', 'A', 'GMR', 'GMRES')   # PD needs a GPU (see --recorded)


def parse_pairs(pairs, what):
    out = {}
    for pair in pairs or []:
        name, _, value = pair.partition('=')
        if name not in VICTIMS + (SOURCE,) or not value.isdigit() or int(value) < 1:
            raise UserError('bad %s %r: expected NAME=N with NAME one of %s and N >= 1'
                            % (what, pair, ', '.join(VICTIMS + (SOURCE,))))
        out[name] = int(value)
    return out


def recorded_column(spec):
    """('PD', column) from 'path/tables.json:PD': a column measured by an earlier command."""
    path, _, name = spec.rpartition(':')
    try:
        with open(path) as f:
            old = json.load(f)
        entry, prov = old['networks'][name], old['provenance']
    except FileNotFoundError:
        raise UserError('--recorded: %s does not exist' % path) from None
    except (ValueError, KeyError, TypeError):
        raise UserError('--recorded %s: expected FILE:NAME with FILE a tables.json holding '
                        'network %r' % (spec, name)) from None
    values = {key: entry[key] for key, _ in tables.ROWS if key in entry}
    column = dict(values, thesis_column=entry.get('thesis_column', name),
                  seed=entry['seed'], epochs=entry['epochs'], protocol=entry['protocol'],
                  bn_mode='%s (as of %s)' % (prov['evaluation']['bn_mode'], prov['commit'][:7]),
                  train_device=entry.get('train_device'),
                  seeds=[dict(values, seed=entry['seed'], epochs=entry['epochs'])],
                  recorded='`%s` at commit `%s` (%s), file %s' % (
                      prov['command'], prov['commit'], entry.get('eval_device'), path))
    column['over_seeds'] = {key: tables.summary([v]) for key, v in values.items()}
    column['aim_met'] = tables.within_aim(column['thesis_column'], column['over_seeds'])
    return name, column


def tables_folder(args, plan, seeds, test_subset):
    """runs/friendly/tables/<protocols>[-<option>...]: every option that changes the tables and
    differs from its default is in the name, so that no variant overwrites another's tables."""
    parts = ['+'.join(dict.fromkeys(s['protocol'] for s in plan))]
    if args.networks != list(DEFAULT_NETWORKS):
        parts.append('+'.join(args.networks))
    if seeds != ([1] if args.quick else list(SEEDS)):
        parts.append('seeds' + '+'.join(map(str, seeds)))
    if test_subset:
        parts.append('test%d' % test_subset)
    if args.bn_mode != PROTOCOL['bn_test_mode']:
        parts.append(args.bn_mode)
    if args.recorded:
        parts.append('recorded')
    if args.device != '@numpy':
        parts.append(args.device.lstrip('@').replace(':', ''))
    return os.path.join(runs_root('friendly'), 'tables', '-'.join(parts))


def main():
    parser = Parser(prog='friendly/evaluate.py', description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--table', action='store_true',
                        help='make the tables (what the command always does; kept for old '
                             'command lines)')
    parser.add_argument('--quick', action='store_true', help='reduced protocol (%d epochs, '
                        'seed 1 only): minutes on a CPU, NOT the thesis protocol'
                        % QUICK['max_epochs'])
    parser.add_argument('--networks', nargs='+', default=list(DEFAULT_NETWORKS),
                        choices=VICTIMS, help='victims (default: %s)' % ' '.join(DEFAULT_NETWORKS))
    parser.add_argument('--seeds', nargs='+', type=positive_int,
                        help='seeds of every victim, the default first (default: %s; quick: 1)'
                             % ' '.join(map(str, SEEDS)))
    parser.add_argument('--from-weights', action='store_true',
                        help='never train: every network must be committed or already trained')
    parser.add_argument('--only-available', action='store_true',
                        help='never train, and leave out the requested seeds that are not '
                             'trained yet (said in the table); the default seeds are needed')
    parser.add_argument('--epochs', type=positive_int, help='maximum epochs for every network')
    parser.add_argument('--epochs-for', nargs='+', metavar='NAME=N',
                        help='maximum epochs for some networks, e.g. PD=20')
    parser.add_argument('--train-subset', type=positive_int, help='train on N images (not the '
                        'thesis)')
    parser.add_argument('--test-subset', type=positive_int, help='attack the first N test '
                        'images')
    parser.add_argument('--bn-mode', default=PROTOCOL['bn_test_mode'], choices=BN_MODES,
                        help="Batch Renormalization at test time: 'batch' (thesis) or 'running'")
    parser.add_argument('--arithmetic', default='device', choices=ARITHMETICS,
                        help="networks trained and tested with the sigmoids of the device's "
                        "own arithmetic (default) or of Chainer's CUDA kernel, as the thesis's "
                        "GPU computed them (protocol <protocol>-cuda)")
    parser.add_argument('--jobs', type=positive_int, default=1, help='networks trained at once')
    parser.add_argument('--device', default='@numpy', help="'@numpy' or '@cupy:0'")
    parser.add_argument('--results', help='write the record here (e.g. results): tables and '
                        'the weights of every network used')
    parser.add_argument('--recorded', nargs='+', default=[], metavar='FILE:NAME',
                        help='add a column measured by an earlier command (tables.json:NAME)')
    parser.add_argument('--mnist-dir', help='MNIST folder')
    parser.add_argument('--no-progress', action='store_true',
                        help='no line per network and step while attacking')
    args = parser.parse_args()
    epochs_for = parse_pairs(args.epochs_for, '--epochs-for')
    seeds = args.seeds or ([1] if args.quick else list(SEEDS))
    if len(set(seeds)) != len(seeds):
        raise UserError('--seeds lists a seed twice')
    recorded = dict(recorded_column(spec) for spec in args.recorded)
    get_device(args.device)   # a bad device fails here, not in every training worker
    started = time.time()

    def settings(name, seed=None):
        return training.settings_for(name, args.quick, epochs_for.get(name, args.epochs), seed,
                                     args.train_subset, arithmetic=args.arithmetic)
    # a record's own weights (DIR/weights/friendly) are found as the repository's are
    store = os.path.join(args.results, 'weights', 'friendly') if args.results else None
    source = settings(SOURCE)
    plan = [source] + [settings(n, s) for n in args.networks for s in seeds]
    test_subset = args.test_subset or (QUICK['test_subset'] if args.quick else None)
    out = make_folder(args.results or tables_folder(args, plan, seeds, test_subset))
    missing = []
    if args.from_weights or args.only_available:
        missing = ['%s seed %d' % (s['network'], s['seed']) for s in plan
                   if weights.locate(s, store) is None]
        needed = [source] + [settings(n, seeds[0]) for n in args.networks]
        if missing and (args.from_weights or any(weights.locate(s, store) is None for s in needed)):
            raise UserError('%s: no committed weights or finished run for %s' % (
                '--from-weights' if args.from_weights else '--only-available (the source '
                'and every default seed are needed)', ', '.join(missing)))
    else:
        tables.train_missing(plan, args.device, args.jobs, args.mnist_dir, store)
    found = [f for f in (weights.locate(s, store) for s in plan) if f is not None]

    data = mnist.test_set(test_subset, args.mnist_dir)
    scores = tables.score(found[1:], found[0], data, args.device, bn_mode=args.bn_mode,
                          progress=not args.no_progress)
    table, scale_plots = {}, {}
    for name in args.networks:
        founds = [f for f in found[1:] if f.settings['network'] == name]
        runs = [dict(scores[(name, f.settings['seed'])], seed=f.settings['seed'],
                     **f.describe()) for f in founds]
        if NETWORKS[name].activation == 'elastic_sigmoid':
            logs = {'%s seed %d' % (name, f.settings['seed']): f.training_log()
                    for f in founds}
            for run, log in zip(runs, logs.values()):
                run['elastic_sigmoid'] = tables.collapse(log)
            scale_plots[name] = logs
        over = {key: tables.summary([r[key] for r in runs]) for key in tables.SUMMARISED}
        table[name] = dict(
            {key: runs[0][key] for key, _ in tables.ROWS}, thesis_column=name,
            seed=seeds[0], epochs=runs[0]['epochs'], protocol=found[1].settings['protocol'],
            bn_mode=args.bn_mode, train_device=runs[0]['train_device'], seeds=runs,
            over_seeds=over, aim_met=tables.within_aim(name, over))
    table.update(recorded)

    label = found[1].settings['protocol']
    note = '**Protocol: %s.** ' % label + (
        'QUICK reduced protocol: not comparable with the thesis.' if args.quick else
        'The thesis protocol (thesis 3.3; early stopping on the epoch-mean training loss, '
        'patience 20, at most 100 epochs).')
    note += ' Batch Renormalization at test time: %r (%s)%s.' % (
        args.bn_mode, BN_MODE_MEANING[args.bn_mode],
        '' if args.bn_mode == PROTOCOL['bn_test_mode'] else ', **not the thesis test mode**')
    if args.arithmetic == 'cuda':
        note += (' Every sigmoid (plain and Elastic) computed, in training and in every test, '
                 'as Chainer\'s CUDA kernel computes it (the thesis\'s GPU; '
                 'friendly/functions/cuda_sigmoid.py), not in the device\'s own arithmetic.')
    note += ' Black-box source: %s seed %d.' % (SOURCE, source['seed'])
    if missing:
        note += ' **Not yet trained, so left out:** %s.' % ', '.join(missing)
    if len(data[0]) != 10000:
        note += ' Attacked on the first %d test images only.' % len(data[0])
    for name in scale_plots:
        gone = [r['seed'] for r in table[name]['seeds'] if r['elastic_sigmoid']['collapsed']]
        note += (' %s: %d of %d seeds collapsed (last epoch\'s training accuracy more than %d '
                 'points below its best%s; Elastic Sigmoid scales per epoch in %s_scales.png).'
                 % (name, len(gone), len(table[name]['seeds']), 100 * tables.COLLAPSE_DROP,
                    ': seed ' + ', '.join(map(str, gone)) if gone else '', name))
    source_info = found[0].describe()
    source_info.update(tables.zero_gradient_percent(found[0].load(args.device), data,
                                                    args.device, args.bn_mode))
    prov = provenance(args.device, wall_time_s=round(time.time() - started, 1), seeds=seeds,
                      source=dict(seed=source['seed'], protocol=source['protocol'],
                                  **source_info),
                      evaluation={'attacks': ['fgsm'], 'epsilon': PROTOCOL['epsilon'],
                                  'bn_mode': args.bn_mode, 'test_images': len(data[0]),
                                  'batch_size': PROTOCOL['eval_batch_size']})
    print(tables.markdown(table, note, prov))
    if args.results:
        for f in found:
            if f.origin == 'run':
                weights.export(f.folder, f.record, store)
    for name, logs in scale_plots.items():
        tables.plot_elastic_scales(logs, os.path.join(out, '%s_scales.png' % name))
    write_json(os.path.join(out, 'tables.json'),
               {'networks': table, 'thesis': THESIS_RESULTS, 'provenance': prov})
    write_text(os.path.join(out, 'tables.md'), tables.markdown(table, note, prov))
    print('wrote %s/tables.md and tables.json' % out)


if __name__ == '__main__':
    run_main(main)
