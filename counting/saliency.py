"""Simonyan saliency and the thesis's second-derivative localisation (thesis 2.2.1-2.2.2).

saliency s(p)   = max over channels c of |d(sum of outputs) / d x[c, p]|
importance_q(p) = max over channels c of |d s(q) / d x[c, p]|        (a second derivative)

Localisation, at most round(sum of outputs) times: seed q = the most salient unassigned pixel;
the unassigned pixels p whose importance_q(p) passes the selection rule form one shape; they and
q become assigned.
"""
import chainer
import chainer.functions as F
import numpy as np

from counting import defaults


class ZeroSecondDerivative(Exception):
    """The network's second derivative vanishes, so localisation cannot select anything."""


class SaliencyGraph:
    """One image through the network, with its saliency kept differentiable."""

    def __init__(self, model, image, device, input_scale=1.0):
        """image: (3, H, W) pixel values as stored (0..255); the network sees image * input_scale.

        Derivatives are taken with respect to the stored pixel values, so thresholds such as the
        original's 5e-10 refer to 0..255 pixels whatever scaling the network uses inside.
        """
        self.model = model
        with chainer.using_config('train', False):
            if image.dtype.kind != 'f':
                image = image.astype(np.float32)
            self.x = chainer.Variable(device.send(image[None]))
            self.outputs = model(self.x * image.dtype.type(input_scale))
            total = F.sum(self.outputs)
            grad, = chainer.grad([total], [self.x], enable_double_backprop=True)
            self._saliency = F.max(F.absolute(grad), axis=1)[0]
        self.counts = chainer.backend.CpuDevice().send(self.outputs.array[0])
        self.saliency = chainer.backend.CpuDevice().send(self._saliency.array)

    def importance(self, row, col):
        """(H, W) channel-max |d saliency[row, col] / d image|."""
        with chainer.using_config('train', False):
            second, = chainer.grad([self._saliency[row, col]], [self.x])
        if second is None:
            return np.zeros_like(self.saliency)
        return chainer.backend.CpuDevice().send(F.max(F.absolute(second), axis=1).array[0])


def picture(values, power=defaults.DETECT['picture_power']):
    """uint8 rendering of a non-negative map: (v / max) ** power * 255 (all-zero stays black)."""
    top = float(values.max())
    if top <= 0:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values / top) ** power * 255).astype(np.uint8)


def kmeans_1d(values, k=3, iterations=50):
    """Labels 0..k-1 (ordered low to high centre) of a 1-D k-means; centres start at quantiles."""
    centres = np.quantile(values, np.linspace(0.1, 0.9, k))
    labels = np.zeros(len(values), dtype=int)
    for _ in range(iterations):
        labels = np.argmin(np.abs(values[:, None] - centres[None]), axis=1)
        new = np.array([values[labels == j].mean() if (labels == j).any() else centres[j]
                        for j in range(k)])
        if np.allclose(new, centres):
            break
        centres = new
    order = np.argsort(centres)
    return np.argsort(order)[labels]


def select_threshold(threshold):
    """Pixels with importance >= threshold (the thesis's rule; original 5e-10)."""
    def select(importance):
        return importance >= threshold
    select.label = 'threshold %g' % threshold
    return select


def select_kmeans(keep=('medium',)):
    """Thesis 2.2.3 proposal: 3-means on log10 importance (low / medium / high), keep `keep`."""
    names = ('low', 'medium', 'high')

    def select(importance):
        mask = np.zeros(importance.shape, dtype=bool)
        positive = importance > 0
        if positive.sum() < 3:
            return mask
        labels = kmeans_1d(np.log10(importance[positive]))
        mask[positive] = np.isin(labels, [names.index(k) for k in keep])
        return mask
    select.label = 'k-means ' + '+'.join(keep)
    return select


# Registry: CLI names -> factory of a selection rule (importance map -> boolean mask).
SELECTIONS = {
    'threshold': lambda threshold: select_threshold(threshold),
    'kmeans': lambda threshold: select_kmeans(('medium',)),
    'kmeans_upper': lambda threshold: select_kmeans(('medium', 'high')),
}


def localise(saliency, importance_fn, n_shapes, select):
    """The localisation loop. Returns one dict per found set: seed, mask, importance, box.

    saliency: (H, W) map; importance_fn(row, col) -> (H, W) second-derivative map;
    n_shapes: the network's total count; at most round(n_shapes) sets are looked for;
    select: importance map -> boolean mask of qualifying pixels.
    """
    assigned = np.zeros(saliency.shape, dtype=bool)
    found = []
    for _ in range(max(0, int(round(n_shapes)))):
        if assigned.all():
            break
        candidates = np.where(assigned, -np.inf, saliency)
        row, col = np.unravel_index(int(np.argmax(candidates)), saliency.shape)
        importance = importance_fn(row, col)
        if not found and not importance.any():
            raise ZeroSecondDerivative(
                'the second derivative of the saliency is zero everywhere for this network '
                '(e.g. ReLU activations); localisation needs a smooth activation such as '
                'modified_softplus, softplus or sigmoid')
        mask = select(importance) & ~assigned
        assigned |= mask
        assigned[row, col] = True
        found.append({'seed': (int(row), int(col)), 'mask': mask, 'importance': importance,
                      'box': bounding_box(mask)})
    return found


def bounding_box(mask):
    """(x0, y0, x1, y1) inclusive pixel box of a mask, or None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1]))
