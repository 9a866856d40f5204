"""Training objective of thesis 3.3: squared distance to the one-hot target, plus GMR.

    L = (1/s) sum_samples |onehot - output|^2
    L_total = L + w * |dL/dx|_2      (GMR, thesis 3.2.1; w = 0.5, the norm over the whole batch)

The GMR term needs double back-propagation: dL/dx is built with `enable_double_backprop`.
"""
import chainer
import chainer.functions as F
from chainer import backend


def one_hot(t, n_classes, dtype):
    xp = backend.get_array_module(t)
    return xp.eye(n_classes, dtype=dtype)[t]


def squared_distance(y, t):
    """Mean over the batch of the summed squared difference to the one-hot of labels t."""
    target = one_hot(t, y.shape[1], y.dtype)
    return F.sum(F.square(y - target)) / y.shape[0]


# Added under the square root: sqrt's derivative is infinite at 0, and a saturated sigmoid
# network has an input gradient of exactly 0 in float32 (GMRES reached it by epoch 9: NaN).
NORM_EPS = 1e-24


def input_gradient_norm(loss, x):
    """sqrt(|dL/dx|^2 + NORM_EPS) over every element of the batch's input gradient."""
    gx, = chainer.grad([loss], [x], enable_double_backprop=True)
    return F.sqrt(F.sum(F.square(gx)) + NORM_EPS)


class Objective(chainer.Chain):
    """Loss of a network under the thesis protocol; reports loss, accuracy and GMR penalty.

    `main/loss` is always the prediction loss L; `main/total` adds the GMR penalty when the
    network has one and gradients are being recorded (what early stopping monitors by
    default); `main/elastic_scale_<layer>` are GMRES's Elastic Sigmoid scales.
    """

    def __init__(self, net, gmr_weight=0.0, eval_bn_mode='batch'):
        super().__init__()
        self.gmr_weight = gmr_weight
        self.eval_bn_mode = eval_bn_mode  # Batch Renormalization mode when not training
        with self.init_scope():
            self.net = net

    def forward(self, x, t):
        if self.gmr_weight and chainer.config.enable_backprop:
            x = chainer.Variable(x)
        y = self.net(x, 'train' if chainer.config.train else self.eval_bn_mode)
        loss = squared_distance(y, t)
        total = loss
        report = {'loss': loss, 'accuracy': F.accuracy(y, t)}
        if self.gmr_weight and chainer.config.enable_backprop:
            penalty = input_gradient_norm(loss, x)
            total = loss + self.gmr_weight * penalty
            report['gmr_penalty'] = penalty
        report['total'] = total
        for k, scale in enumerate(self.net.elastic_scales()):
            report['elastic_scale_%d' % (k + 1)] = scale
        chainer.report(report, self)
        return total
