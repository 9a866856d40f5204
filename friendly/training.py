"""Training one network of thesis Table 3.1 under the thesis protocol, resumable exactly.

    settings = settings_for('S')                 # everything that determines the trained network
    record = train(settings, weights.run_folder(settings))

A run folder (runkit.runs.RunFolder) holds settings.json (settings, provenance, and when finished the epochs trained),
log, loss.png, accuracy.png, `snapshot` (the whole trainer after the last finished epoch, for
resume; `snapshot.previous` is the one before) and model.npz. A run killed at any point and
resumed ends with exactly the weights of an uninterrupted run: the shuffle's random state
travels in the snapshot (runkit.training). No work is dropped unasked: a folder holding a run is
reused, resumed or replaced only as `resume` / `force` say (check_folder).
"""
import os
import sys
import time

import chainer
import numpy as np
from chainer import training
from chainer.training import extensions

from friendly import mnist, weights
from friendly.defaults import NETWORKS, PROTOCOL, QUICK
from friendly.networks import ARITHMETICS, build_network
from friendly.objective import Objective
from runkit.cli import UserError
from runkit.devices import get_device
from runkit.provenance import make_folder, provenance, write_json
from runkit.renorm import RenormSchedule
from runkit.runs import RunFolder
from runkit.training import EarlyStopping, ResumableIterator, Snapshot, best_epoch, load_snapshot

# What early stopping watches: the epoch mean of the training objective (GMR penalty included,
# as the original code did) or of the validation prediction loss (the thesis text's reading).
MONITORS = {'training': 'main/total', 'validation': 'validation/main/loss'}


def protocol_name(quick=False, epochs=None, train_subset=None, monitor=None,
                  arithmetic='device'):
    """'thesis' or 'quick', with -e<epochs> / -n<images> / -val / -cuda appended for any
    override."""
    base, defaults = ('quick', QUICK) if quick else ('thesis', {'max_epochs':
                                                                PROTOCOL['max_epochs']})
    name = base
    if epochs and epochs != defaults['max_epochs']:
        name += '-e%d' % epochs
    if train_subset and train_subset != defaults.get('train_subset'):
        name += '-n%d' % train_subset
    if monitor and monitor != PROTOCOL['monitor']:
        name += '-' + monitor
    if arithmetic != 'device':
        name += '-' + arithmetic
    return name


def settings_for(name, quick=False, epochs=None, seed=None, train_subset=None, monitor=None,
                 arithmetic='device'):
    """Everything that determines a trained network; a finished run is reused only if equal.
    `arithmetic` (networks.ARITHMETICS) is recorded only when it is not the device's own."""
    if name not in NETWORKS:
        raise UserError('unknown network %r; choose one of %s' % (name, ', '.join(NETWORKS)))
    if monitor is not None and monitor not in MONITORS:
        raise UserError('unknown early-stopping monitor %r; choose one of %s'
                        % (monitor, ', '.join(MONITORS)))
    config = NETWORKS[name]
    if arithmetic not in ARITHMETICS:
        raise UserError('unknown arithmetic %r; choose one of %s'
                        % (arithmetic, ', '.join(ARITHMETICS)))
    defaults = QUICK if quick else {'max_epochs': PROTOCOL['max_epochs'], 'train_subset': None}
    settings = {
        'network': name,
        'config': config._asdict(),
        'protocol': protocol_name(quick, epochs, train_subset, monitor, arithmetic),
        'max_epochs': epochs or defaults['max_epochs'],
        'seed': config.seed if seed is None else seed,
        'train_subset': train_subset or defaults['train_subset'],
        'batch_size': PROTOCOL['batch_size'],
        'momentum': PROTOCOL['momentum'],
        'patience': PROTOCOL['patience'],
        'monitor': monitor or PROTOCOL['monitor'],
        'validation_size': PROTOCOL['validation_size'],
    }
    if arithmetic != 'device':
        settings['arithmetic'] = arithmetic
    return settings


def load_data(settings, mnist_dir=None):
    (x, y), _ = mnist.load_mnist(mnist_dir)
    train, val = mnist.split_validation(x, y, settings['seed'], settings['validation_size'])
    if settings['train_subset']:
        n = settings['train_subset']
        m = max(n // 10, 20)
        train, val = (train[0][:n], train[1][:n]), (val[0][:m], val[1][:m])
    return train, val


def check_folder(out, settings, resume=False, force=False, restart_advice=None):
    """The record of a finished run in `out` with these settings, to reuse, or None to train
    (resuming its snapshot with `resume`); a one-line UserError where training would drop work
    unasked or `resume` has nothing to resume, ending with `restart_advice` when given (callers
    without train.py's options) or else the options to use. `force` starts over whatever `out`
    holds."""
    if force:
        return None

    def refuse(holds, options):
        raise UserError('%s holds %s; %s' % (out, holds, restart_advice or options))

    folder = RunFolder(out)
    record = folder.finished_record()
    if record and weights.same_settings(record.get('settings'), settings):
        print('%s already holds this run, finished; reusing it (--force trains it again)' % out)
        return record
    if record:
        refuse('a finished run with other settings', 'use another --out, or --force to replace it')
    if folder.snapshots():
        started = (folder.record() or {}).get('settings')
        if not weights.same_settings(started, settings):
            refuse('an interrupted run with other settings',
                   'use another --out, or --force to start over')
        if not resume:
            refuse('an interrupted run', 'pass --resume to continue it, or --force to start over')
        return None
    if resume:
        raise UserError('nothing to resume in %s (no snapshot); drop --resume to start the run'
                        % out)
    return None


def train(settings, out, device='@numpy', resume=False, force=False, progress=True,
          mnist_dir=None, restart_advice=None):
    """Run (with `resume`, continue) one training run; returns its record (also on disk).
    What `out` may already hold is checked first (check_folder); `restart_advice` replaces the
    advice to pass train.py's --force in every refusal."""
    device = get_device(device)
    make_folder(out)
    done = check_folder(out, settings, resume, force, restart_advice)
    if done:
        return done
    resume = resume and not force
    folder = RunFolder(out)
    if not resume:   # a fresh start: nothing older may pass for this run's model or snapshot
        for path in folder.snapshots() + [folder.model_path]:
            if os.path.exists(path):
                os.remove(path)
    np.random.seed(settings['seed'])   # Chainer's initialisers draw from numpy's generator
    if device.xp is not np:
        device.xp.random.seed(settings['seed'])
    name = settings['network']
    config = NETWORKS[name]
    train_data, val_data = load_data(settings, mnist_dir)
    net = build_network(name, weights.arithmetic_of(settings))
    objective = Objective(net, config.gmr_weight, eval_bn_mode=PROTOCOL['bn_test_mode'])
    objective.to_device(device)
    optimizer = chainer.optimizers.MomentumSGD(lr=config.lr, momentum=settings['momentum'])
    optimizer.setup(objective)

    train_iter = ResumableIterator(chainer.datasets.TupleDataset(*train_data),
                                   settings['batch_size'], seed=settings['seed'])
    val_iter = chainer.iterators.SerialIterator(
        chainer.datasets.TupleDataset(*val_data), PROTOCOL['eval_batch_size'], repeat=False,
        shuffle=False)
    updater = training.StandardUpdater(train_iter, optimizer, device=device)
    stop = EarlyStopping(settings['max_epochs'], settings['patience'],
                         MONITORS[settings['monitor']])
    trainer = training.Trainer(updater, stop, out=out)

    # validation loss/accuracy every epoch, Batch Renormalization in the thesis's test mode
    trainer.extend(extensions.Evaluator(val_iter, objective, device=device))
    if config.batch_renorm:
        trainer.extend(RenormSchedule(
            net.batch_renorm_links(), PROTOCOL['batch_renorm_loss_threshold'],
            PROTOCOL['batch_renorm_steps'], PROTOCOL['batch_renorm_step_epochs']),
            name='batch_renorm_schedule')
    # per-epoch means (JSON lines in out/log), which early stopping reads, and a console table
    trainer.extend(extensions.LogReport())
    trainer.extend(extensions.PrintReport(
        ['epoch', 'main/loss', 'main/total', 'main/accuracy', 'validation/main/loss',
         'validation/main/accuracy', 'elapsed_time'], out=sys.stdout))
    if extensions.PlotReport.available():
        trainer.extend(extensions.PlotReport(['main/loss', 'validation/main/loss'], 'epoch',
                                             filename='loss.png'))
        trainer.extend(extensions.PlotReport(['main/accuracy', 'validation/main/accuracy'],
                                             'epoch', filename='accuracy.png'))
    if progress:
        trainer.extend(extensions.ProgressBar(update_interval=100))
    trainer.extend(Snapshot())

    if resume:
        try:
            path = load_snapshot(trainer, folder.snapshots())
        except UserError as err:
            raise UserError('%s; %s' % (err, restart_advice or '--force starts the run over')) \
                from None
        print('resumed %s at epoch %d' % (path, updater.epoch))
    record = {'settings': settings, 'finished': False,
              'provenance': provenance(device, seed=settings['seed'])}
    write_json(folder.settings_path, record)
    started = time.time()
    trainer.run(show_loop_exception_msg=False)   # an error ends as one line or one traceback
    weights.save_model(folder.model_path, net)
    log = trainer.get_extension('LogReport').log
    val_epoch, val_loss = best_epoch(log, 'validation/main/loss')
    record.update(finished=True, epochs_trained=updater.epoch,
                  early_stopped=updater.epoch < settings['max_epochs'],
                  best_monitored_epoch=stop.best_epoch,
                  best_validation_epoch=val_epoch, best_validation_loss=val_loss,
                  final_training_loss=log[-1].get('main/total') if log else None,
                  wall_time_s=round(trainer.elapsed_time, 1),
                  this_session_s=round(time.time() - started, 1),
                  batch_renorm_rmax=[float(l.rmax) for l in net.batch_renorm_links()])
    write_json(folder.settings_path, record)
    return record
