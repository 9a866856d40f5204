"""Training a counting network (thesis 2.2): settings, the preset's dataset, the Trainer.

    settings = resolve_settings('small', {'activation': 'relu'})
    folder = ensure_dataset(preset_dataset_folder('small'), settings['dataset'])
    record = train(settings, folder, out)

A run folder holds settings.json (the settings, the data trained on, held-out image names,
provenance; `finished` once model.npz is written), log, loss.png, snapshot_epoch_N and model.npz.
A run killed and resumed from its last snapshot ends with exactly the weights of an
uninterrupted one: the shuffle's random state and rmax/dmax travel in the snapshot.
"""
import copy
import glob
import json
import os
import re
import time

import chainer
import chainer.functions as F
import numpy as np
from chainer import training
from chainer.training import extensions

from counting import data as data_mod
from counting import defaults, networks, sample, shapes
from runkit.cli import UserError
from runkit.devices import get_device
from runkit.provenance import atomic_write, provenance, write_json
from runkit.renorm import RenormSchedule
from runkit.runs import RunFolder, json_form, runs_root
from runkit.training import ResumableIterator, load_snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_ROOT = os.path.join(ROOT, 'data', 'counting')

# Settings a command-line flag may override on top of a preset.
OVERRIDABLE = ('network', 'activation', 'batch_renorm', 'epochs', 'batch_size', 'lr',
               'optimizer', 'lr_stages', 'test_fraction', 'input_scale')
# Settings taken from defaults.TRAIN rather than the preset.
FIXED = ('momentum', 'batch_renorm_steps', 'batch_renorm_step_epochs')


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


# Registry: CLI names -> optimiser factory (learning rate, momentum).
OPTIMIZERS = {
    'sgd': lambda lr, momentum: chainer.optimizers.SGD(lr=lr),
    'momentum_sgd': lambda lr, momentum: chainer.optimizers.MomentumSGD(lr=lr,
                                                                        momentum=momentum),
    'rmsprop': lambda lr, momentum: chainer.optimizers.RMSprop(lr=lr),
}


def resolve_settings(preset, overrides=None, seed=None, dataset_folder=None):
    """Everything that determines the trained network: the preset, `overrides` (None values
    are ignored), the seed and the fixed training constants. With `dataset_folder` the data
    come from that folder instead of the preset's generated dataset."""
    if preset not in defaults.TRAIN_PRESETS:
        raise UserError('unknown preset %r; choose from %s'
                        % (preset, ', '.join(sorted(defaults.TRAIN_PRESETS))))
    s = copy.deepcopy(defaults.TRAIN_PRESETS[preset])
    for key, value in (overrides or {}).items():
        if key not in OVERRIDABLE:
            raise ValueError('setting %r cannot be overridden' % key)
        if value is not None:
            s[key] = value
    if not 0 < s['test_fraction'] < 1:
        raise UserError('--test-fraction must be between 0 and 1, got %s' % s['test_fraction'])
    for key in FIXED:
        s[key] = defaults.TRAIN[key]
    s['preset'] = preset
    s['seed'] = defaults.TRAIN['seed'] if seed is None else seed
    if dataset_folder is not None:
        s['dataset'] = {'folder': os.path.abspath(dataset_folder)}
    return json_form(s)


def same_settings(record, settings):
    """Whether a run's settings.json record was trained with exactly `settings`."""
    return all(key in record for key in settings) and \
        json_form({key: record[key] for key in settings}) == json_form(settings)


def finished(out, settings):
    """The settings.json record of `out` if it holds a finished run of `settings`, else None."""
    record = RunFolder(out).finished_record()
    return record if record and same_settings(record, settings) else None


def default_out(preset, dataset_folder=None):
    """runs/counting/<preset>, or <preset>-<dataset name> for a run on another dataset."""
    name = preset if dataset_folder is None else '%s-%s' % (
        preset, os.path.basename(os.path.abspath(dataset_folder)))
    return os.path.join(runs_root('counting'), name)


def cache_gigabytes(settings):
    """Size of a preset's decoded image cache (uint8, 3 channels)."""
    d = settings['dataset']
    return d['num_images'] * 3 * d['image_width'] * d['image_height'] / 1e9


def _check_fresh_start(out, settings):
    """Starting (not resuming) in `out` must not throw away a finished or interrupted run."""
    snapshots = glob.glob(os.path.join(out, 'snapshot_epoch_*'))
    record = RunFolder(out).finished_record()
    if record is not None:
        same = same_settings(record, settings)
        raise UserError('%s already holds a finished run %s; pass --force to train it again%s'
                        % (out, 'of these settings' if same else 'of other settings',
                           '' if same else ', or another --out'))
    if snapshots:
        raise UserError('%s holds an interrupted run (last snapshot: %s); continue it with '
                        '--resume, or start over with --force'
                        % (out, os.path.basename(latest_snapshot(out))))


def finish_test_statistics(model, settings, train_set, device, batch=200):
    """With 'population' test statistics, replace Batch Renormalization's running averages by
    the population statistics of `train_set` (networks.set_population_statistics); returns what
    the record says about it."""
    if not (settings['batch_renorm'] and
            settings.get('batch_renorm_test_statistics') == 'population'):
        return None

    def batches():
        for start in range(0, len(train_set), batch):
            x = np.stack([train_set[i][0] for i in range(start, min(start + batch,
                                                                      len(train_set)))])
            yield device.send(x)
    networks.set_population_statistics(model, batches)
    return {'population_statistics_images': len(train_set)}


def preset_dataset_folder(preset):
    return os.path.join(DATA_ROOT, preset)


def sampler_request(spec, workers=1):
    """(num_images, shape_limit, sampler settings) that generate the dataset `spec` describes."""
    settings = dict(defaults.SAMPLER)
    settings.update({'image_width': spec['image_width'], 'image_height': spec['image_height'],
                     'shape_types': tuple(spec['shape_types']),
                     'scale_bounds': tuple(spec['scale_bounds']),
                     'limit_scale_resampling': spec['limit_scale_resampling'],
                     'seed': spec['seed'], 'workers': workers})
    return spec['num_images'], spec['shape_limit'], settings


def _sampler_differences(made, num_images, shape_limit, settings):
    """Names of the sampler settings in which sample_settings.json `made` differs."""
    wanted = json_form({'num_images': num_images, 'shape_limit': shape_limit,
                        **{k: v for k, v in settings.items() if k != 'workers'}})
    have = dict(made.get('settings', {}))
    have.update({k: made.get(k) for k in ('num_images', 'shape_limit')})
    return sorted(k for k in wanted if have.get(k) != wanted[k])


def ensure_dataset(folder, spec, workers=1):
    """`folder`, holding the dataset `spec` describes: generated when missing, reused only when
    its sample_settings.json shows the same sampler settings (else a UserError)."""
    num_images, shape_limit, settings = sampler_request(spec, workers)
    if os.path.exists(os.path.join(folder, 'truths.json')):
        made_path = os.path.join(folder, 'sample_settings.json')
        made = data_mod.read_json(made_path, 'sampler settings') \
            if os.path.exists(made_path) else {}
        differ = _sampler_differences(made, num_images, shape_limit, settings)
        if differ:
            raise UserError('%s holds a dataset made with other sampler settings (%s); delete '
                            'the folder to generate it again, or pass --dataset'
                            % (folder, ', '.join(differ) if made else
                               'no sample_settings.json'))
        print('reusing dataset %s' % folder)
        return folder
    print('generating dataset %s (%d images)' % (folder, num_images))
    try:
        sample.generate(folder, num_images, shape_limit, settings)
    except shapes.PlacementError as err:
        raise UserError(str(err)) from None
    return folder


def lr_stage_ends(epochs, stages):
    """Epochs after which the lr is multiplied by 0.1: the run split into `stages` equal parts."""
    return sorted({max(1, round(epochs * k / stages)) for k in range(1, stages)})


class LearningRateStages(training.Extension):
    """Epoch-end extension: lr = initial x 0.1^k once k stage ends have passed.

    The value follows from the epoch alone, and is set again when a run (re)starts: a resumed
    run needs no saved state. (ExponentialShift under a ManualScheduleTrigger does not do this:
    resumed after the last shift, it is not re-initialised and trains on the initial lr.)
    """

    trigger = 1, 'epoch'

    def __init__(self, initial, ends, factor=0.1):
        self.initial, self.ends, self.factor = initial, list(ends), factor

    def value(self, epoch):
        return self.initial * self.factor ** sum(1 for end in self.ends if end <= epoch)

    def initialize(self, trainer):
        self(trainer)

    def __call__(self, trainer):
        trainer.updater.get_optimizer('main').lr = self.value(trainer.updater.epoch)


def snapshots_newest_first(out):
    found = glob.glob(os.path.join(out, 'snapshot_epoch_*[0-9]'))
    if not found:
        raise UserError('--resume: nothing to resume in %s (no snapshot_epoch_*)' % out)
    return sorted(found, key=lambda p: -int(re.findall(r'(\d+)$', p)[0]))


def latest_snapshot(out):
    return snapshots_newest_first(out)[0]


def _check_resumable(out, settings):
    """A resumed run must continue the settings it started with; only the epochs may grow."""
    path = os.path.join(out, 'settings.json')
    if not os.path.exists(path):
        return
    with open(path) as f:
        old = json.load(f)
    rest = {k: v for k, v in settings.items() if k != 'epochs'}
    if not same_settings(old, rest):
        raise UserError('%s was started with other settings; use another --out or drop '
                        '--resume' % out)


def relative(path):
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def train(settings, dataset_folder, out, device='@numpy', resume=None, snapshot_every=None,
          progress=True, workers=1, force=False):
    """Train (or with `resume`, a snapshot path or 'latest', continue) one run into `out`.

    A fresh start refuses a folder with a finished or interrupted run unless `force`.
    Returns the run's record, which is also written to out/settings.json.
    """
    s = settings
    device = get_device(device)
    if not resume and not force:
        _check_fresh_start(out, s)
    if resume:
        _check_resumable(out, s)
        candidates = snapshots_newest_first(out) if resume == 'latest' else [resume]
        if not os.path.exists(candidates[0]):
            raise UserError('--resume: %s does not exist' % candidates[0])
    dataset = data_mod.ShapeDataset(dataset_folder, workers=workers)
    height, width = dataset.image_size
    train_idx, test_idx = data_mod.split(len(dataset), s['test_fraction'], s['seed'])
    if s['batch_size'] > len(train_idx):
        raise UserError('--batch-size %d is larger than the %d training images of %s; one '
                        'update would span several epochs' % (s['batch_size'], len(train_idx),
                                                                dataset.folder))
    train_set = data_mod.Examples(dataset, train_idx, s['input_scale'])
    test_set = data_mod.Examples(dataset, test_idx, s['input_scale'])

    np.random.seed(s['seed'])   # Chainer's initialisers draw from numpy's global generator
    try:
        model = networks.build(s['network'], len(dataset.types), height, width,
                               s['activation'], s['batch_renorm'])
    except ValueError as err:
        raise UserError(str(err)) from None
    if s['output_bias'] == 'training_mean':
        model.out.b.array[...] = dataset.counts[train_idx].mean(axis=0)
    model.to_device(device)
    loss = CountLoss(model)
    optimizer = OPTIMIZERS[s['optimizer']](s['lr'], s['momentum'])
    optimizer.setup(loss)

    train_iter = ResumableIterator(train_set, s['batch_size'], seed=s['seed'])
    test_iter = chainer.iterators.SerialIterator(test_set, 200, repeat=False, shuffle=False)
    updater = training.updaters.StandardUpdater(train_iter, optimizer, device=device)
    trainer = training.Trainer(updater, (s['epochs'], 'epoch'), out=out)

    # held-out loss and MAE each epoch (test mode: Batch Renormalization's running averages;
    # with 'population' test statistics, model.npz gets those after the last epoch)
    trainer.extend(extensions.Evaluator(test_iter, loss, device=device))
    # learning rate x0.1 at the end of each of the lr_stages stages but the last
    trainer.extend(LearningRateStages(s['lr'], lr_stage_ends(s['epochs'], s['lr_stages'])),
                   name='lr_stages')
    # rmax/dmax steps, started by the first epoch whose last training loss is below threshold
    trainer.extend(RenormSchedule(model.batch_renorm_links(), s['batch_renorm_loss_threshold'],
                                  s['batch_renorm_steps'], s['batch_renorm_step_epochs']),
                   name='batch_renorm_schedule')
    # the whole trainer every snapshot_every epochs (written to a temp file, then renamed)
    trainer.extend(extensions.snapshot(filename='snapshot_epoch_{.updater.epoch}'),
                   trigger=(snapshot_every or defaults.TRAIN['snapshot_every'], 'epoch'))
    # per-epoch means in out/log, the lr, a loss plot and a console table
    trainer.extend(extensions.LogReport())
    trainer.extend(extensions.observe_lr())
    if extensions.PlotReport.available():
        trainer.extend(extensions.PlotReport(['main/loss', 'validation/main/loss'], 'epoch',
                                             filename='loss.png'))
    trainer.extend(extensions.PrintReport(
        ['epoch', 'main/loss', 'main/mae', 'validation/main/loss', 'validation/main/mae',
         'lr', 'elapsed_time']))
    if progress:
        trainer.extend(extensions.ProgressBar(update_interval=20))

    if resume:
        # a damaged snapshot is named and set aside; the one before it is used
        snapshot = load_snapshot(trainer, candidates)
        print('resumed from %s (epoch %d)' % (snapshot, trainer.updater.epoch))

    record = dict(s)
    record.update({
        'finished': False, 'device': str(device), 'dataset_folder': relative(dataset.folder),
        'types': dataset.types, 'image_height': height, 'image_width': width,
        'test_names': [dataset.names[i] for i in test_idx], 'train_images': len(train_set),
    })
    # an earlier run's model must not pass for this one's, nor (on a fresh start) its
    # snapshots be picked up by a later --resume
    model_path = os.path.join(out, 'model.npz')
    stale = [model_path] + ([] if resume else glob.glob(os.path.join(out, 'snapshot_epoch_*')))
    for old in stale:
        if os.path.exists(old):
            os.remove(old)
    write_json(os.path.join(out, 'settings.json'), record)
    print('training %s/%s (batch renorm %s) on %d images %dx%d, %d epochs, %s lr %g, batch %d, '
          'device %s' % (s['network'], s['activation'], s['batch_renorm'], len(train_set),
                         width, height, s['epochs'], s['optimizer'], s['lr'], s['batch_size'],
                         device))
    start_iter = trainer.updater.iteration
    start = time.time()
    trainer.run()
    seconds = time.time() - start
    images = (trainer.updater.iteration - start_iter) * s['batch_size']

    test_statistics = finish_test_statistics(model, s, train_set, device)
    atomic_write(model_path, lambda tmp: chainer.serializers.save_npz(tmp, model))
    log = trainer.get_extension('LogReport').log
    record.update({
        'finished': True, 'seconds': round(seconds, 1),
        'train_images_per_second': round(images / seconds, 1) if seconds > 0 else None,
        'final': log[-1] if log else None,
        'batch_renorm_rmax': [float(link.rmax) for link in model.batch_renorm_links()],
        'test_statistics': test_statistics,
        'provenance': provenance(device=device, seed=s['seed'], epochs=s['epochs']),
    })
    write_json(os.path.join(out, 'settings.json'), record)
    print('saved %s/model.npz and settings.json (%.0f s, %.0f images/s)'
          % (out, seconds, images / max(seconds, 1e-9)))
    return record
