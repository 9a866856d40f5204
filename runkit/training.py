"""Trainer pieces that make a resumed run continue exactly where the interrupted one stopped.

A trainer snapshot holds the weights, optimiser state, iterator position and every extension
that can serialize itself; the shuffle and early stopping add what Chainer's own pieces leave
out, Snapshot keeps the previous snapshot, and load_snapshot checks a snapshot before using it.
"""
import math
import os
import sys
import zipfile

import chainer
import numpy as np

from runkit.cli import UserError, first_line
from runkit.provenance import atomic_write
from runkit.renorm import scalar
from runkit.runs import PREVIOUS, SNAPSHOT


class ShuffleOrder:
    """Order sampler for SerialIterator: a fresh permutation each epoch from its own seeded
    generator, whose state is saved with the iterator (see ResumableIterator)."""

    def __init__(self, seed):
        self.random = np.random.RandomState(seed)

    def __call__(self, current_order, current_position):
        return self.random.permutation(len(current_order))

    def serialize(self, serializer):
        kind, keys, pos, has_gauss, gauss = self.random.get_state()
        keys = serializer('keys', keys)
        pos = serializer('pos', pos)
        has_gauss = serializer('has_gauss', has_gauss)
        gauss = serializer('cached_gaussian', gauss)
        self.random.set_state((kind, np.asarray(keys, dtype=np.uint32), int(pos),
                               int(has_gauss), float(gauss)))


class ResumableIterator(chainer.iterators.SerialIterator):
    """SerialIterator whose snapshot also holds its order sampler's random state."""

    def __init__(self, dataset, batch_size, seed):
        super().__init__(dataset, batch_size, order_sampler=ShuffleOrder(seed))

    def serialize(self, serializer):
        super().serialize(serializer)
        self.order_sampler.serialize(serializer['order_sampler'])


class EarlyStopping:
    """Stop trigger: at most `max_epochs`, and stop once `patience` epochs have ended without
    a new lowest epoch mean of `monitor` (read from LogReport's per-epoch log, which the
    snapshot keeps, so a resumed run decides exactly as an uninterrupted one)."""

    def __init__(self, max_epochs, patience, monitor='main/loss'):
        self.max_epochs = max_epochs
        self.patience = patience
        self.monitor = monitor
        self.best = math.inf
        self.best_epoch = 0
        self.checked_epoch = 0

    def __call__(self, trainer):
        epoch = trainer.updater.epoch
        if epoch != self.checked_epoch:
            self.checked_epoch = epoch
            entry = trainer.get_extension('LogReport').log[-1]
            if self.monitor not in entry:
                raise ValueError('early stopping monitors %r, which the log does not hold'
                                 % self.monitor)
            if scalar(entry[self.monitor]) < self.best:
                self.best, self.best_epoch = scalar(entry[self.monitor]), epoch
        return epoch >= self.max_epochs or epoch - self.best_epoch >= self.patience

    def get_training_length(self):
        """The longest the run can be, for Chainer's ProgressBar."""
        return self.max_epochs, 'epoch'

    def serialize(self, serializer):
        self.best = float(serializer('best', self.best))
        self.best_epoch = int(serializer('best_epoch', self.best_epoch))
        self.checked_epoch = int(serializer('checked_epoch', self.checked_epoch))


def best_epoch(log, key):
    """(epoch, value) of the lowest `key` in a LogReport log; (None, None) if absent."""
    entries = [(entry[key], entry['epoch']) for entry in log if key in entry]
    if not entries:
        return None, None
    value, epoch = min(entries)
    return epoch, value


class Snapshot(chainer.training.Extension):
    """The whole trainer in out/snapshot after every epoch (atomic; uncompressed, as zlib is slow
    on large weights); the one before is kept as out/snapshot.previous."""
    trigger = (1, 'epoch')
    priority = -100   # after every extension whose state the snapshot holds

    def __call__(self, trainer):
        path = os.path.join(trainer.out, SNAPSHOT)
        if os.path.exists(path):
            os.replace(path, os.path.join(trainer.out, PREVIOUS))
        atomic_write(path, lambda tmp: chainer.serializers.save_npz(tmp, trainer,
                                                                    compression=False))


def load_snapshot(trainer, paths):
    """Load the first of `paths` (newest first) that is whole into `trainer`; return its path.

    A damaged snapshot (truncated, failing its CRC, not this trainer's) is renamed <name>.damaged
    and named in one line on stderr when an older one is used, or in the UserError when none is.
    """
    damaged = []
    for path in paths:
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                raise ValueError('%s fails its CRC check' % bad)
            chainer.serializers.load_npz(path, trainer)
        except Exception as err:  # noqa: BLE001 - any damage ends the same way
            damaged.append('%s (%s: %s)' % (path, type(err).__name__, first_line(err)))
            continue
        for bad_path in paths[:len(damaged)]:
            os.replace(bad_path, bad_path + '.damaged')
        if damaged:
            print('snapshot %s is damaged: moved to .damaged; resuming from %s instead'
                  % (damaged[0], path), file=sys.stderr)
        return path
    raise UserError('cannot resume: snapshot %s is damaged' % '; '.join(damaged))
