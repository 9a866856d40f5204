"""Batch Renormalization (Ioffe 2017) as the thesis trains it, for both packages.

Chainer's link keeps rmax/dmax as plain attributes, so neither model files nor trainer
snapshots hold them: a resumed run would train with rmax = 1, dmax = 0 until the schedule next
fires. Here they are persistent. The schedule (thesis chapters 2 and 3): the first epoch whose
last training loss is below a threshold sets rmax = dmax = steps[0]; every `every` epochs after
that, the next step.

Modes of the link's forward:
  'train'    r, d clipped to rmax/dmax, batch statistics, running averages updated (training)
  'batch'    plain Batch Normalization on the batch's own statistics (r = 1, d = 0), running
             averages neither used nor updated: the thesis's chapter-3 test mode; with a
             `group`, each run of `group` rows on its own statistics, as if it were a batch
  'running'  the learned running averages (Chainer's inference)
  None       'train' under chainer.config.train, else 'running'
"""
import chainer
import chainer.functions as F
import chainer.links as L
from chainer import training

MODES = ('train', 'batch', 'running')


class BatchRenormalization(L.BatchRenormalization):
    """chainer.links.BatchRenormalization with rmax/dmax saved, and a test-mode switch."""

    def __init__(self, size, decay, rmax=1.0, dmax=0.0, **kwargs):
        # floats from the start: a saved float cannot be loaded into an int attribute
        super().__init__(size, rmax=float(rmax), dmax=float(dmax), decay=decay, **kwargs)
        self.register_persistent('rmax')
        self.register_persistent('dmax')

    def forward(self, x, mode=None, group=None):
        """Normalise x (rows: examples) in `mode` (MODES, or None: module doc); `group` only
        matters in 'batch' mode, for more than `group` rows."""
        if mode is None:
            mode = 'train' if chainer.config.train else 'running'
        if mode == 'batch':
            if group and len(x) > group:
                return self._grouped(chainer.as_variable(x), group)
            return F.batch_normalization(x, self.gamma, self.beta, eps=self.eps)
        if mode not in MODES:
            raise ValueError('unknown Batch Renormalization mode %r' % (mode,))
        with chainer.using_config('train', mode == 'train'):
            return super().forward(x)

    def _grouped(self, h, group):
        """'batch' mode on each run of `group` rows of h: (h - mean) / sqrt(var + eps) * gamma
        + beta with each run's own mean and (biased) variance; the rows after the last whole
        run are a batch of their own. Several test batches go through one call this way."""
        n, c = h.shape
        full = n - n % group
        parts = []
        if full and not chainer.config.enable_backprop:
            # the same arithmetic on arrays: a query of Square pays no graph bookkeeping
            hg = h.array[:full].reshape(full // group, group, c)
            centred = hg - hg.mean(axis=1, keepdims=True)
            scale = self.gamma.array / self.xp.sqrt((centred ** 2).mean(axis=1, keepdims=True)
                                                    + self.eps)
            parts.append(chainer.Variable((centred * scale + self.beta.array).reshape(full, c)))
        elif full:
            hg = F.reshape(h[:full], (full // group, group, c))
            mean = F.mean(hg, axis=1, keepdims=True)
            centred = hg - F.broadcast_to(mean, hg.shape)
            var = F.mean(F.square(centred), axis=1, keepdims=True)
            normed = centred / F.broadcast_to(F.sqrt(var + self.eps), hg.shape)
            normed = F.reshape(normed, (full, c))
            parts.append(normed * F.broadcast_to(self.gamma, normed.shape)
                         + F.broadcast_to(self.beta, normed.shape))
        if full < n:
            parts.append(F.batch_normalization(h[full:], self.gamma, self.beta, eps=self.eps))
        return parts[0] if len(parts) == 1 else F.concat(parts, axis=0)


class RenormSchedule(training.Extension):
    """Epoch-end extension setting rmax = dmax of `links` by the thesis's schedule."""

    trigger = 1, 'epoch'
    priority = training.PRIORITY_EDITOR   # before reports and snapshots, so they see the values

    def __init__(self, links, threshold, steps, every, monitor='main/loss'):
        self.links = list(links)
        self.threshold = threshold
        self.steps = tuple(steps)
        self.every = every
        self.monitor = monitor
        self.start_epoch = -1   # first epoch that ended below the threshold; -1: not yet

    def __call__(self, trainer):
        epoch = trainer.updater.epoch
        if self.start_epoch < 0:
            loss = trainer.observation.get(self.monitor)
            if loss is None or scalar(loss) >= self.threshold:
                return
            self.start_epoch = epoch
        self.apply(self.value(epoch))

    def value(self, epoch):
        """rmax = dmax at the end of `epoch` (None before the threshold was first met)."""
        if self.start_epoch < 0:
            return None
        return self.steps[min((epoch - self.start_epoch) // self.every, len(self.steps) - 1)]

    def apply(self, value):
        for link in self.links:
            link.rmax = link.dmax = float(value)

    def serialize(self, serializer):
        self.start_epoch = int(serializer('start_epoch', self.start_epoch))


def scalar(value):
    """A reported value (Variable, numpy or cupy 0-d array, float) as a Python float."""
    return float(chainer.backend.CpuDevice().send(chainer.as_array(value)))
