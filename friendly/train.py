"""Train one network of thesis Table 3.1 with the thesis protocol (SPEC Part A).

    python friendly/train.py S                      # thesis protocol, runs/friendly/thesis/S
    python friendly/train.py PD --device @cupy:0    # on a GPU
    python friendly/train.py GMR --resume           # continue an interrupted run

Writes into --out: settings.json (every setting, seed and the git commit), log, loss.png,
accuracy.png, an atomic per-epoch `snapshot` for --resume, and model.npz when finished.
"""
import argparse
import functools
import json
import os
import time

import chainer
import numpy as np
from chainer import training
from chainer.training import extensions

from friendly import mnist
from friendly.cli import UserError, run_main
from friendly.defaults import NETWORKS, PROTOCOL, QUICK
from friendly.networks import build_network
from friendly.objective import Objective
from friendly.provenance import atomic_write, provenance, write_json
from friendly.training import EarlyStopping, RenormSchedule

# Training runs live under $FRIENDLY_RUNS (default runs/friendly/ in the checkout).
RUNS = os.environ.get('FRIENDLY_RUNS') or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'runs', 'friendly')


def protocol_name(quick=False, epochs=None, train_subset=None):
    """'thesis' or 'quick', with -e<epochs> / -n<images> appended for any override."""
    base, defaults = ('quick', QUICK) if quick else ('thesis', {'max_epochs':
                                                                PROTOCOL['max_epochs']})
    name = base
    if epochs and epochs != defaults['max_epochs']:
        name += '-e%d' % epochs
    if train_subset and train_subset != defaults.get('train_subset'):
        name += '-n%d' % train_subset
    return name


def settings_for(name, quick=False, epochs=None, seed=None, train_subset=None):
    """Everything that determines a trained network; a finished run is reused only if equal."""
    config = NETWORKS[name]
    defaults = QUICK if quick else {'max_epochs': PROTOCOL['max_epochs'], 'train_subset': None}
    return {
        'network': name,
        'config': config._asdict(),
        'protocol': protocol_name(quick, epochs, train_subset),
        'max_epochs': epochs or defaults['max_epochs'],
        'seed': config.seed if seed is None else seed,
        'train_subset': train_subset or defaults['train_subset'],
        'batch_size': PROTOCOL['batch_size'],
        'momentum': PROTOCOL['momentum'],
        'patience': PROTOCOL['patience'],
        'validation_size': PROTOCOL['validation_size'],
    }


def run_folder(settings):
    """runs/friendly/<protocol>/<network>, with -seed<k> when the seed is not the default."""
    name = settings['network']
    if settings['seed'] != NETWORKS[name].seed:
        name += '-seed%d' % settings['seed']
    return os.path.join(RUNS, settings['protocol'], name)


def same_settings(a, b):
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def load_data(settings, mnist_dir=None):
    (x, y), _ = mnist.load_mnist(mnist_dir)
    train, val = mnist.split_validation(x, y, settings['seed'], settings['validation_size'])
    if settings['train_subset']:
        n = settings['train_subset']
        train, val = (train[0][:n], train[1][:n]), (val[0][:max(n // 10, 20)],
                                                     val[1][:max(n // 10, 20)])
    return train, val


def save_model(path, net):
    atomic_write(path, lambda tmp: chainer.serializers.save_npz(tmp, net, compression=False))


def load_model(run_dir, device='@numpy'):
    """The trained network of a finished run folder, with its training settings."""
    settings_path = os.path.join(run_dir, 'settings.json')
    model_path = os.path.join(run_dir, 'model.npz')
    if not os.path.exists(model_path) or not os.path.exists(settings_path):
        raise UserError('%s holds no finished run (model.npz and settings.json); train it '
                        'first with friendly/train.py' % run_dir)
    try:
        with open(settings_path) as f:
            settings = json.load(f)['settings']
        net = build_network(settings['network'])
    except (ValueError, KeyError, TypeError):
        raise UserError('%s is not a settings file written by friendly/train.py' % settings_path)
    try:
        chainer.serializers.load_npz(model_path, net)
    except Exception as err:  # noqa: BLE001 - any damage to the file ends the same way
        raise UserError('%s is not a readable model of network %s (%s)'
                        % (model_path, settings['network'], type(err).__name__))
    net.to_device(device)
    return net, settings


def train(settings, out, device='@numpy', resume=False, progress=True, mnist_dir=None):
    """Run (or resume) one training run; returns the final settings dict (also on disk)."""
    device = chainer.get_device(device)
    device.use()
    settings_path = os.path.join(out, 'settings.json')
    snapshot_path = os.path.join(out, 'snapshot')
    if resume and os.path.exists(settings_path):
        with open(settings_path) as f:
            old = json.load(f)
        if not same_settings(old['settings'], settings):
            raise UserError('%s was started with different settings; use another --out or '
                            'drop --resume' % out)
        if old.get('finished') and os.path.exists(os.path.join(out, 'model.npz')):
            print('%s already finished; nothing to resume' % out)
            return old
    np.random.seed(settings['seed'])
    if device.xp is not np:
        device.xp.random.seed(settings['seed'])
    name = settings['network']
    config = NETWORKS[name]
    train_data, val_data = load_data(settings, mnist_dir)
    net = build_network(name)
    objective = Objective(net, config.gmr_weight, eval_bn_mode=PROTOCOL['bn_test_mode'])
    objective.to_device(device)
    optimizer = chainer.optimizers.MomentumSGD(lr=config.lr, momentum=settings['momentum'])
    optimizer.setup(objective)

    train_iter = chainer.iterators.SerialIterator(
        chainer.datasets.TupleDataset(*train_data), settings['batch_size'], shuffle=True)
    val_iter = chainer.iterators.SerialIterator(
        chainer.datasets.TupleDataset(*val_data), PROTOCOL['eval_batch_size'], repeat=False,
        shuffle=False)
    updater = training.StandardUpdater(train_iter, optimizer, device=device)
    stop = EarlyStopping(settings['max_epochs'], settings['patience'])
    trainer = training.Trainer(updater, stop, out=out)

    # validation loss/accuracy every epoch (Batch Renormalization in the test mode)
    trainer.extend(extensions.Evaluator(val_iter, objective, device=device))
    # rmax/dmax schedule of the SPEC (only networks with Batch Renormalization)
    if config.renorm:
        trainer.extend(RenormSchedule(net.renorm_links(), PROTOCOL['renorm_loss_threshold'],
                                      PROTOCOL['renorm_steps'], PROTOCOL['renorm_step_epochs']),
                       name='renorm_schedule')
    # per-epoch log (JSON lines in out/log) and console table
    trainer.extend(extensions.LogReport())
    trainer.extend(extensions.PrintReport(
        ['epoch', 'main/loss', 'main/total', 'main/accuracy', 'validation/main/loss',
         'validation/main/accuracy', 'elapsed_time']))
    # loss and accuracy curves
    if extensions.PlotReport.available():
        trainer.extend(extensions.PlotReport(['main/loss', 'validation/main/loss'], 'epoch',
                                             file_name='loss.png'))
        trainer.extend(extensions.PlotReport(['main/accuracy', 'validation/main/accuracy'],
                                             'epoch', file_name='accuracy.png'))
    if progress:
        trainer.extend(extensions.ProgressBar(update_interval=100))
    # atomic snapshot of the whole trainer every epoch, for --resume; stored without zlib, which
    # took 14.6 s per epoch on PD's weights and momentum (2 x 61.5 M floats) to save 7 % of disk
    trainer.extend(extensions.snapshot(filename='snapshot', savefun=functools.partial(
        chainer.serializers.save_npz, compression=False)), trigger=(1, 'epoch'))

    if resume and os.path.exists(snapshot_path):
        chainer.serializers.load_npz(snapshot_path, trainer)
        print('resumed %s at epoch %d' % (out, updater.epoch))
    record = {'settings': settings, 'finished': False,
              'provenance': provenance(device, seed=settings['seed'])}
    write_json(settings_path, record)
    started = time.time()
    trainer.run()
    save_model(os.path.join(out, 'model.npz'), net)
    record.update(finished=True, epochs_trained=updater.epoch,
                  best_validation_epoch=stop.best_epoch,
                  best_validation_loss=stop.best_loss,
                  early_stopped=updater.epoch < settings['max_epochs'],
                  wall_time_s=round(trainer.elapsed_time, 1),
                  this_session_s=round(time.time() - started, 1),
                  renorm_rmax=[float(l.rmax) for l in net.renorm_links()])
    write_json(settings_path, record)
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('network', help='one of ' + ', '.join(NETWORKS))
    parser.add_argument('--quick', action='store_true',
                        help='reduced protocol of friendly/defaults.py QUICK (not the thesis)')
    parser.add_argument('--epochs', type=int, help='maximum epochs (thesis: 100)')
    parser.add_argument('--seed', type=int, help='seed for init, shuffling and the validation '
                        'split (default: the network\'s entry in friendly/defaults.py)')
    parser.add_argument('--device', default='@numpy', help="'@numpy' (CPU) or '@cupy:0'")
    parser.add_argument('--out', help='run folder (default runs/friendly/<protocol>/<network>'
                        '[-seed<k>])')
    parser.add_argument('--resume', action='store_true', help='continue from out/snapshot')
    parser.add_argument('--train-subset', type=int,
                        help='train on the first N images of the split (not the thesis protocol)')
    parser.add_argument('--mnist-dir', help='MNIST folder (default $%s or data/mnist)'
                        % mnist.ENV_VAR)
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    args = parser.parse_args()
    if args.network not in NETWORKS:
        raise UserError('unknown network %r; choose one of %s'
                        % (args.network, ', '.join(NETWORKS)))
    for flag in ('epochs', 'train_subset'):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UserError('--%s must be at least 1' % flag.replace('_', '-'))
    settings = settings_for(args.network, args.quick, args.epochs, args.seed, args.train_subset)
    out = args.out or run_folder(settings)
    print(json.dumps(settings))
    record = train(settings, out, args.device, args.resume, not args.no_progress, args.mnist_dir)
    print('finished %s: %d epochs, best validation epoch %d, model in %s'
          % (args.network, record['epochs_trained'], record['best_validation_epoch'], out))


if __name__ == '__main__':
    run_main(main)
