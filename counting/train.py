"""Train a counting network (MSE on per-type counts) with Chainer's Trainer.

    python counting/train.py                  # CPU-sized default: data/counting/default, minutes
    python counting/train.py --preset thesis  # the thesis run: 1000x1000, ConvolutionalLarge, 100 epochs

Outputs go to runs/counting/<preset>/ (or --out): model.npz, settings.json (all settings and
provenance), log, loss.png and trainer snapshots every 10 epochs (resume with --resume).
"""
import glob
import os
import re
import time

import counting  # noqa: F401  (quiets CuPy's NCCL warning before chainer loads)
import chainer
import chainer.functions as F
import numpy as np
from chainer import training
from chainer.training import extensions

from counting import data as data_mod
from counting import defaults, networks, sample, shapes, trained
from counting.activations import ACTIVATIONS
from runkit.cli import (Parser, UserError, non_negative_int, positive_float, positive_int,
                        run_main)
from runkit.provenance import atomic_write, provenance, write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CountLoss(chainer.Chain):
    """Mean squared error between predicted and true counts; also reports the mean |error|."""

    def __init__(self, predictor):
        super().__init__()
        with self.init_scope():
            self.predictor = predictor

    def forward(self, x, t):
        y = self.predictor(x)
        loss = F.mean_squared_error(y, t)
        chainer.report({'loss': loss, 'mae': F.mean(F.absolute(y - t))}, self)
        return loss


class RenormSchedule(training.Extension):
    """rmax/dmax of every Batch Renormalization: 1.1 once an epoch's last loss < threshold,
    then every `every` epochs the next of `steps` (10, 100, 1000)."""

    trigger = 1, 'epoch'
    priority = training.PRIORITY_READER

    def __init__(self, links, threshold, first, steps, every):
        self.links, self.threshold = links, threshold
        self.first, self.steps, self.every = first, list(steps), every
        self.start_epoch = -1   # epoch at which 'first' was applied; -1 = not yet

    def __call__(self, trainer):
        epoch = trainer.updater.epoch
        if self.start_epoch < 0:
            loss = trainer.observation.get('main/loss')
            if loss is not None and float(chainer.backend.CpuDevice().send(
                    getattr(loss, 'array', loss))) < self.threshold:
                self.start_epoch = epoch
        self._apply(epoch)

    def _apply(self, epoch):
        if self.start_epoch < 0:
            return
        level = min((epoch - self.start_epoch) // self.every, len(self.steps))
        value = self.first if level == 0 else self.steps[level - 1]
        for link in self.links:
            link.rmax, link.dmax = value, value

    def serialize(self, serializer):
        self.start_epoch = int(serializer('start_epoch', self.start_epoch))


OPTIMIZERS = {
    'sgd': lambda lr: chainer.optimizers.SGD(lr=lr),
    'momentum_sgd': lambda lr: chainer.optimizers.MomentumSGD(lr=lr,
                                                              momentum=defaults.TRAIN['momentum']),
    'rmsprop': lambda lr: chainer.optimizers.RMSprop(lr=lr),
}


def build_parser():
    p = Parser(prog='counting/train.py', description=__doc__.splitlines()[0])
    p.add_argument('--preset', choices=sorted(defaults.TRAIN_PRESETS), default='default',
                   help='settings table in counting/defaults.py (default: %(default)s)')
    p.add_argument('--dataset', help='dataset folder from counting/sample.py (default: the '
                   "preset's, generated under data/counting/<preset> when missing)")
    p.add_argument('--out', help='run folder (default: runs/counting/<preset>)')
    p.add_argument('--network', choices=sorted(networks.NETWORKS))
    p.add_argument('--activation', choices=sorted(ACTIVATIONS))
    p.add_argument('--batch-renorm', dest='batch_renorm', action='store_true', default=None,
                   help='Batch Renormalization after each convolution')
    p.add_argument('--no-batch-renorm', dest='batch_renorm', action='store_false')
    p.add_argument('--epochs', type=positive_int)
    p.add_argument('--batch-size', type=positive_int)
    p.add_argument('--lr', type=positive_float, help='initial learning rate')
    p.add_argument('--optimizer', choices=sorted(OPTIMIZERS))
    p.add_argument('--lr-drops', type=positive_int,
                   help='split the run into this many parts, lr x0.1 at each boundary '
                   '(thesis: 3; 1 = constant lr)')
    p.add_argument('--test-fraction', type=positive_float,
                   help='share of the dataset held out for counting/test.py')
    p.add_argument('--seed', type=non_negative_int, default=defaults.TRAIN['seed'],
                   help='seed for initial weights, split and shuffling (default %(default)s)')
    p.add_argument('--device', default=defaults.TRAIN['device'],
                   help="Chainer device: '@numpy' or '@cupy:0' (default %(default)s)")
    p.add_argument('--workers', type=positive_int, default=2,
                   help='processes for generating/decoding the dataset (default %(default)s)')
    p.add_argument('--resume', nargs='?', const='latest',
                   help='continue from a trainer snapshot (default: the latest in the run folder)')
    p.add_argument('--snapshot-every', type=positive_int, default=defaults.TRAIN['snapshot_every'],
                   help='epochs between trainer snapshots (default %(default)s)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    return p


def resolve_settings(args):
    """The preset table overridden by any flags given."""
    s = dict(defaults.TRAIN_PRESETS[args.preset])
    for key in ('network', 'activation', 'batch_renorm', 'epochs', 'batch_size', 'lr',
                'optimizer', 'lr_drops', 'test_fraction'):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    if not s['test_fraction'] < 1:
        raise UserError('--test-fraction must be below 1, got %s' % s['test_fraction'])
    s['seed'] = args.seed
    s['device'] = args.device
    s['out'] = args.out or os.path.join(ROOT, 'runs', 'counting', args.preset)
    return s


def ensure_dataset(args, s):
    """Folder of the dataset to train on, generating the preset's when it is missing."""
    if args.dataset:
        return args.dataset
    spec = s['dataset']
    folder = os.path.join(ROOT, 'data', 'counting', args.preset)
    if os.path.exists(os.path.join(folder, 'truths.json')):
        print('reusing dataset %s' % folder)
        return folder
    print('generating dataset %s (%d images)' % (folder, spec['num_images']))
    settings = dict(defaults.SAMPLER)
    settings.update({'image_width': spec['image_width'], 'image_height': spec['image_height'],
                     'shape_types': tuple(spec['shape_types']),
                     'scale_bounds': tuple(spec['scale_bounds']),
                     'limit_scale_resampling': spec['limit_scale_resampling'],
                     'seed': spec['seed'], 'workers': args.workers})
    try:
        sample.generate(folder, spec['num_images'], spec['shape_limit'], settings)
    except shapes.PlacementError as err:
        raise UserError(str(err)) from None
    return folder


def latest_snapshot(out):
    found = glob.glob(os.path.join(out, 'snapshot_epoch_*'))
    if not found:
        raise UserError('--resume: no snapshot_epoch_* in %s' % out)
    return max(found, key=lambda p: int(re.findall(r'(\d+)$', p)[0]))


def main(argv=None):
    args = build_parser().parse_args(argv)
    s = resolve_settings(args)
    device = trained.get_device(s['device'])
    folder = ensure_dataset(args, s)
    dataset = data_mod.ShapeDataset(folder, workers=args.workers)
    height, width = dataset.image_size
    train_idx, test_idx = data_mod.split(len(dataset), s['test_fraction'], s['seed'])
    scale = defaults.TRAIN['input_scale']
    train_set = data_mod.Examples(dataset, train_idx, scale)
    test_set = data_mod.Examples(dataset, test_idx, scale)

    np.random.seed(s['seed'])   # Chainer's initialisers draw from numpy's global generator
    try:
        model = networks.build(s['network'], len(dataset.types), height, width,
                               s['activation'], s['batch_renorm'])
    except ValueError as err:
        raise UserError(str(err)) from None
    model.to_device(device)
    loss = CountLoss(model)
    optimizer = OPTIMIZERS[s['optimizer']](s['lr'])
    optimizer.setup(loss)

    order = chainer.iterators.ShuffleOrderSampler(np.random.RandomState(s['seed']))
    train_iter = chainer.iterators.SerialIterator(train_set, s['batch_size'],
                                                  order_sampler=order)
    test_iter = chainer.iterators.SerialIterator(test_set, 200, repeat=False, shuffle=False)
    updater = training.updaters.StandardUpdater(train_iter, optimizer, device=device)
    out = s['out']
    trainer = training.Trainer(updater, (s['epochs'], 'epoch'), out=out)

    # Held-out loss and MAE each epoch (running-average Batch Renormalization statistics).
    trainer.extend(extensions.Evaluator(test_iter, loss, device=device))
    # Learning rate x0.1 at each third of the run.
    drops = sorted({max(1, round(s['epochs'] * k / s['lr_drops'])) for k in
                    range(1, s['lr_drops'])})
    trainer.extend(extensions.ExponentialShift('lr', 0.1),
                   trigger=training.triggers.ManualScheduleTrigger(drops, 'epoch'))
    # rmax/dmax schedule, keyed to the training loss threshold.
    t = defaults.TRAIN
    trainer.extend(RenormSchedule(model.renorm_links(), s['brn_loss_threshold'],
                                  t['brn_first'], t['brn_steps'], t['brn_step_every']))
    # Crash-safe snapshots (Chainer writes into a temp folder, then moves) every 10 epochs.
    trainer.extend(extensions.snapshot(filename='snapshot_epoch_{.updater.epoch}'),
                   trigger=(args.snapshot_every, 'epoch'))
    trainer.extend(extensions.LogReport())
    trainer.extend(extensions.observe_lr())
    if extensions.PlotReport.available():
        trainer.extend(extensions.PlotReport(['main/loss', 'validation/main/loss'], 'epoch',
                                             filename='loss.png'))
    trainer.extend(extensions.PrintReport(
        ['epoch', 'main/loss', 'main/mae', 'validation/main/loss', 'validation/main/mae',
         'lr', 'elapsed_time']))
    if not args.no_progress:
        trainer.extend(extensions.ProgressBar(update_interval=20))

    if args.resume:
        path = latest_snapshot(out) if args.resume == 'latest' else args.resume
        if not os.path.exists(path):
            raise UserError('--resume: %s does not exist' % path)
        chainer.serializers.load_npz(path, trainer)
        print('resumed from %s (epoch %d)' % (path, trainer.updater.epoch))

    print('training %s/%s (batch renorm %s) on %d images %dx%d, %d epochs, %s lr %g, batch %d, '
          'device %s' % (s['network'], s['activation'], s['batch_renorm'], len(train_set),
                         width, height, s['epochs'], s['optimizer'], s['lr'], s['batch_size'],
                         s['device']))
    start_iter = trainer.updater.iteration
    start = time.time()
    trainer.run()
    seconds = time.time() - start
    images = (trainer.updater.iteration - start_iter) * s['batch_size']

    atomic_write(os.path.join(out, 'model.npz'),
                 lambda tmp: chainer.serializers.save_npz(tmp, model))
    log = trainer.get_extension('LogReport').log
    record = {k: v for k, v in s.items() if k not in ('out',)}
    record.update({
        'dataset_folder': os.path.relpath(dataset.folder, ROOT) if dataset.folder.startswith(ROOT)
        else dataset.folder,
        'types': dataset.types, 'image_height': height, 'image_width': width,
        'input_scale': scale, 'test_names': [dataset.names[i] for i in test_idx],
        'train_images': len(train_set), 'seconds': round(seconds, 1),
        'train_images_per_second': round(images / seconds, 1) if seconds > 0 else None,
        'final': log[-1] if log else None,
        'provenance': provenance(device=s['device'], seed=s['seed'], epochs=s['epochs']),
    })
    write_json(os.path.join(out, 'settings.json'), record)
    print('saved %s/model.npz and settings.json (%.0f s, %.0f images/s)'
          % (out, seconds, images / max(seconds, 1e-9)))


if __name__ == '__main__':
    run_main(main)
