"""Trainer pieces of the thesis protocol: early stopping and the Batch Renormalization schedule."""
import math

import chainer


def _scalar(value):
    """A reported value (Variable, numpy or cupy 0-d array, float) as a Python float."""
    return float(chainer.backend.CpuDevice().send(chainer.as_array(value)))


class EarlyStopping:
    """Stop trigger: at most `max_epochs`; stop after `patience` epochs without a lower
    validation loss. Records the best epoch (SPEC choice: the final model is kept)."""

    def __init__(self, max_epochs, patience, monitor='validation/main/loss'):
        self.max_epochs = max_epochs
        self.patience = patience
        self.monitor = monitor
        self.best_loss = math.inf
        self.best_epoch = 0
        self.checked_epoch = 0

    def __call__(self, trainer):
        epoch = trainer.updater.epoch
        if epoch != self.checked_epoch and self.monitor in trainer.observation:
            self.checked_epoch = epoch
            loss = _scalar(trainer.observation[self.monitor])
            if loss < self.best_loss:
                self.best_loss, self.best_epoch = loss, epoch
        return epoch >= self.max_epochs or epoch - self.best_epoch >= self.patience

    def serialize(self, serializer):
        self.best_loss = float(serializer('best_loss', self.best_loss))
        self.best_epoch = int(serializer('best_epoch', self.best_epoch))
        self.checked_epoch = int(serializer('checked_epoch', self.checked_epoch))


class RenormSchedule:
    """Epoch-end extension: the first epoch whose last training loss is below `threshold`
    sets rmax = dmax = steps[0]; every `every` epochs after that, the next step."""

    trigger = (1, 'epoch')
    priority = 200  # before reports and snapshots, so they see the new values

    def __init__(self, renorm_links, threshold, steps, every, monitor='main/loss'):
        self.links = renorm_links
        self.threshold = threshold
        self.steps = steps
        self.every = every
        self.monitor = monitor
        self.start_epoch = -1  # first epoch below the threshold; rmax/dmax persist in the links

    def __call__(self, trainer):
        epoch = trainer.updater.epoch
        if self.start_epoch < 0:
            if _scalar(trainer.observation[self.monitor]) >= self.threshold:
                return
            self.start_epoch = epoch
        step = min((epoch - self.start_epoch) // self.every, len(self.steps) - 1)
        self.apply(self.steps[step])

    def apply(self, value):
        for link in self.links:
            link.rmax = link.dmax = value

    def serialize(self, serializer):
        self.start_epoch = int(serializer('start_epoch', self.start_epoch))
