"""Reproduce thesis Tables 3.2 and 3.3 over several seeds (friendly/tables.py).

    python friendly/evaluate.py --only-available           # re-derive from the committed weights
    python friendly/evaluate.py --jobs 2                   # train what is missing (hours on a CPU)
    python friendly/evaluate.py --quick --jobs 2           # reduced protocol, minutes, labelled
    python friendly/evaluate.py --jobs 2 --results results \
        --recorded results/pd-h100-e20/tables.json:PD \
        --beside results/tables-cuda/tables.json           # the record in results/
    python friendly/evaluate.py --arithmetic cuda --from-weights --results results/tables-cuda
                                                          # the same trained as the thesis's GPU

Each network comes from the committed weights (results/weights/friendly, checksums verified),
else from a finished run under runs/friendly/<protocol>/ with identical settings, else it is
trained there (interrupted runs resume exactly: rerun the same command). The tables are printed
and written to runs/friendly/tables/<protocol>[-<option>...]/, one folder per set of options
that changes them (tables.Request.folder); only `--results DIR` writes elsewhere (the record:
DIR/tables.md, DIR/tables.json, and every network trained for it exported to
DIR/weights/friendly with its manifest). Progress: a line per network and step, with its time.
"""
import argparse
import os
import time

from friendly import mnist, tables, weights
from friendly.defaults import PROTOCOL, QUICK, SEEDS, SOURCE, THESIS_RESULTS, VICTIMS
from friendly.networks import ARITHMETICS, BN_MODES
from runkit.cli import Parser, UserError, name_value_pairs, positive_int, run_main
from runkit.devices import get_device
from runkit.provenance import make_folder, write_json, write_text


def main():
    parser = Parser(prog='friendly/evaluate.py', description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--table', action='store_true',
                        help='make the tables (what the command always does; kept for old '
                             'command lines)')
    parser.add_argument('--quick', action='store_true', help='reduced protocol (%d epochs, '
                        'seed 1 only): minutes on a CPU, NOT the thesis protocol'
                        % QUICK['max_epochs'])
    parser.add_argument('--networks', nargs='+', default=list(tables.DEFAULT_NETWORKS),
                        choices=VICTIMS, help='victims (default: %s)'
                        % ' '.join(tables.DEFAULT_NETWORKS))
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
    parser.add_argument('--beside', metavar='FILE',
                        help="show another record's tables over seeds beside these "
                        '(its tables.json, e.g. results/tables-cuda/tables.json)')
    parser.add_argument('--mnist-dir', help='MNIST folder')
    parser.add_argument('--no-progress', action='store_true',
                        help='no line per network and step while attacking')
    args = parser.parse_args()
    epochs_for = name_value_pairs(args.epochs_for, '--epochs-for', VICTIMS + (SOURCE,),
                                  minimum=1)
    seeds = args.seeds or tables.default_seeds(args.quick)
    if len(set(seeds)) != len(seeds):
        raise UserError('--seeds lists a seed twice')
    request = tables.Request(
        networks=args.networks, seeds=seeds, quick=args.quick, epochs=args.epochs,
        epochs_for=epochs_for, train_subset=args.train_subset,
        test_subset=args.test_subset or (QUICK['test_subset'] if args.quick else None),
        bn_mode=args.bn_mode, arithmetic=args.arithmetic, device=args.device,
        recorded=dict(tables.recorded_column(spec) for spec in args.recorded),
        beside=tables.beside_record(args.beside) if args.beside else None,
        # a record's own weights (DIR/weights/friendly) are found as the repository's are
        store=os.path.join(args.results, 'weights', 'friendly') if args.results else None)
    get_device(args.device)   # a bad device fails here, not in every training worker
    started = time.time()
    out = make_folder(args.results or request.folder())
    found, missing = tables.find(request, args.from_weights, args.only_available, args.jobs,
                                 args.mnist_dir)
    data = mnist.test_set(request.test_subset, args.mnist_dir)
    table, note, prov, logs = tables.make(request, found, missing, data, started,
                                          progress=not args.no_progress)
    text = tables.markdown(table, note, prov, request.beside)
    print(text)
    if args.results:
        for f in found:
            if f.origin == 'run':
                weights.export(f.folder, f.record, request.store)
    for name, network_logs in logs.items():
        tables.plot_elastic_scales(network_logs, os.path.join(out, '%s_scales.png' % name))
    write_json(os.path.join(out, 'tables.json'),
               {'networks': table, 'thesis': THESIS_RESULTS, 'note': note,
                'beside': request.beside, 'provenance': prov})
    write_text(os.path.join(out, 'tables.md'), text)
    print('wrote %s/tables.md and tables.json' % out)


if __name__ == '__main__':
    run_main(main)
