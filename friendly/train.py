"""Train one network of thesis Table 3.1 with the thesis protocol (friendly/training.py).

    python friendly/train.py S                      # thesis protocol, runs/friendly/thesis/S
    python friendly/train.py PD --device @cupy:0    # on a GPU
    python friendly/train.py GMR --resume           # continue an interrupted run exactly
    python friendly/train.py GMRES --arithmetic cuda  # sigmoids as the thesis's GPU computed

Writes into --out: settings.json (every setting, seed and the git commit), log, loss.png,
accuracy.png, an atomic per-epoch `snapshot` for --resume (and the one before it), and model.npz
when finished. A finished run with the same settings is reused; an interrupted one needs
--resume; --force starts over whatever the folder holds.
"""
import argparse
import json

from friendly import mnist
from friendly.defaults import NETWORKS
from friendly.networks import ARITHMETICS
from friendly.training import MONITORS, settings_for, train
from friendly.weights import run_folder
from runkit.cli import Parser, positive_int, run_main
from runkit.devices import get_device


def main():
    parser = Parser(prog='friendly/train.py', description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('network', choices=list(NETWORKS), metavar='NETWORK',
                        help='one of ' + ', '.join(NETWORKS))
    parser.add_argument('--quick', action='store_true',
                        help='reduced protocol of friendly/defaults.py QUICK (not the thesis)')
    parser.add_argument('--epochs', type=positive_int, help='maximum epochs (thesis: 100)')
    parser.add_argument('--seed', type=int, help='seed for init, shuffling and the validation '
                        'split (default: the network\'s entry in friendly/defaults.py)')
    parser.add_argument('--monitor', choices=list(MONITORS), help='early stopping watches the '
                        'epoch-mean training loss (default, as the original code) or validation')
    parser.add_argument('--device', default='@numpy', help="'@numpy' (CPU) or '@cupy:0'")
    parser.add_argument('--arithmetic', default='device', choices=ARITHMETICS,
                        help="sigmoids (plain and Elastic) computed by the device's own "
                        "arithmetic (default) or as Chainer's CUDA kernel computes them, the "
                        "thesis GPU's, on any device (run folder <protocol>-cuda)")
    parser.add_argument('--out', help='run folder (default runs/friendly/<protocol>/<network>'
                        '[-seed<k>])')
    again = parser.add_mutually_exclusive_group()
    again.add_argument('--resume', action='store_true', help='continue from out/snapshot')
    again.add_argument('--force', action='store_true', help='start over, dropping what the run '
                       'folder holds (snapshots, model)')
    parser.add_argument('--train-subset', type=positive_int,
                        help='train on the first N images of the split (not the thesis protocol)')
    parser.add_argument('--mnist-dir', help='MNIST folder (default $%s or data/mnist)'
                        % mnist.ENV_VAR)
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    args = parser.parse_args()
    get_device(args.device)   # a bad device is a one-line error before anything starts
    settings = settings_for(args.network, args.quick, args.epochs, args.seed, args.train_subset,
                            args.monitor, args.arithmetic)
    out = args.out or run_folder(settings)
    print(json.dumps(settings))
    record = train(settings, out, args.device, args.resume, args.force, not args.no_progress,
                   args.mnist_dir)
    print('finished %s: %d epochs, best validation epoch %s, model in %s'
          % (args.network, record['epochs_trained'], record['best_validation_epoch'], out))


if __name__ == '__main__':
    run_main(main)
