"""Trainer pieces that make a resumed run continue exactly where the interrupted one stopped.

A trainer snapshot holds the weights, optimiser state, iterator position and every extension
that can serialize itself; these two add what Chainer's own pieces leave out.
"""
import math

import chainer
import numpy as np

from runkit.renorm import scalar


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
