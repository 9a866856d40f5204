"""Train a counting network (MSE on per-type counts) with Chainer's Trainer (counting/training.py).

    python counting/train.py                  # the CPU analogue of Figures 2.3/2.4 (preset small)
    python counting/train.py --preset thesis  # Figures 2.3/2.4 at the thesis's size (a GPU's work)
    python counting/train.py --resume         # continue an interrupted run exactly

Outputs go to runs/counting/<preset>/ (with --dataset DIR: runs/counting/<preset>-<DIR's name>;
or --out): model.npz, settings.json (all settings and provenance), log, loss.png and trainer
snapshots every 10 epochs (resume with --resume). A folder holding a finished or interrupted
run is never silently overwritten: --resume continues it, --force starts over.
"""
import counting  # noqa: F401  (quiets CuPy's NCCL warning before chainer loads)
import numpy
from counting import bench, defaults, networks, training
from counting.activations import ACTIVATIONS
from runkit.cli import (Parser, UserError, non_negative_int, positive_float, positive_int,
                        run_main)
from runkit.devices import get_device


def build_parser():
    p = Parser(prog='counting/train.py', description=__doc__.splitlines()[0])
    p.add_argument('--preset', choices=sorted(defaults.TRAIN_PRESETS),
                   default=defaults.DEFAULT_PRESET,
                   help='settings table in counting/defaults.py (default: %(default)s)')
    p.add_argument('--dataset', help='dataset folder from counting/sample.py (default: the '
                   "preset's, generated under data/counting/<preset> when missing)")
    p.add_argument('--out', help='run folder (default: runs/counting/<preset>)')
    p.add_argument('--network', choices=sorted(networks.NETWORKS), help='network to train')
    p.add_argument('--activation', choices=sorted(ACTIVATIONS),
                   help='activation after each convolution')
    p.add_argument('--batch-renorm', dest='batch_renorm', action='store_true', default=None,
                   help='Batch Renormalization after each convolution')
    p.add_argument('--no-batch-renorm', dest='batch_renorm', action='store_false',
                   help='no Batch Renormalization (the convolutions keep their biases)')
    p.add_argument('--epochs', type=positive_int, help='epochs to train')
    p.add_argument('--batch-size', type=positive_int, help='images per update')
    p.add_argument('--lr', type=positive_float, help='initial learning rate')
    p.add_argument('--optimizer', choices=sorted(training.OPTIMIZERS), help='optimiser')
    p.add_argument('--lr-stages', type=positive_int,
                   help='split the run into this many equal stages, lr x0.1 at each boundary '
                   '(thesis: 3; 1 = constant lr)')
    p.add_argument('--input-scale', type=positive_float,
                   help='factor on the 0..255 pixels before the network (thesis: 1, raw)')
    p.add_argument('--batch-renorm-step-epochs', type=positive_int,
                   help='epochs between the rmax/dmax steps (default %d, the thesis\'s)'
                   % defaults.TRAIN['batch_renorm_step_epochs'])
    p.add_argument('--test-fraction', type=positive_float,
                   help='share of the dataset held out for counting/test.py')
    p.add_argument('--seed', type=non_negative_int, default=defaults.TRAIN['seed'],
                   help='seed for initial weights, split and shuffling (default %(default)s)')
    p.add_argument('--device', default=defaults.TRAIN['device'],
                   help="Chainer device: '@numpy' or '@cupy:0' (default %(default)s)")
    p.add_argument('--workers', type=positive_int, default=2,
                   help='processes for generating/decoding the dataset (default %(default)s)')
    p.add_argument('--resume', nargs='?', const='latest',
                   help='continue from a trainer snapshot (default: the latest in the run '
                   'folder); only --epochs may differ from the interrupted run')
    p.add_argument('--snapshot-every', type=positive_int, default=defaults.TRAIN['snapshot_every'],
                   help='epochs between trainer snapshots (default %(default)s)')
    p.add_argument('--force', action='store_true',
                   help='start over in a run folder that holds a finished or interrupted run')
    p.add_argument('--yes', action='store_true',
                   help='run a thesis-size preset on the CPU anyway (days of training)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    settings = training.resolve_settings(
        args.preset, {key: getattr(args, key) for key in training.OVERRIDABLE}, args.seed,
        args.dataset)
    if args.batch_renorm_step_epochs:
        settings['batch_renorm_step_epochs'] = args.batch_renorm_step_epochs
    device = get_device(args.device)
    if args.preset.startswith('thesis') and device.xp is numpy and not args.yes:
        seconds = bench.bench_training(args.preset, 1, device, batch=1)['seconds_per_image']
        images = round(settings['dataset']['num_images'] * (1 - settings['test_fraction']))
        raise UserError('preset %s is a GPU\'s work: one training image took %.1f s here '
                        '(measured now, batch 1), so %d epochs x %d images take at least %.1f '
                        'days on this CPU, and its decoded images need %.0f GB; pass --device @cupy:0, or '
                        '--yes to run it here anyway'
                        % (args.preset, seconds, settings['epochs'], images,
                           seconds * images * settings['epochs'] / 86400,
                           training.cache_gigabytes(settings)))
    folder = args.dataset or training.ensure_dataset(
        training.preset_dataset_folder(args.preset), settings['dataset'], args.workers)
    out = args.out or training.default_out(args.preset, args.dataset)
    training.train(settings, folder, out, device, args.resume, args.snapshot_every,
                   not args.no_progress, args.workers, force=args.force)


if __name__ == '__main__':
    run_main(main)
