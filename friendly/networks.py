"""The FC-100-100-10 networks of thesis Table 3.1, built by name from `defaults.NETWORKS`.

Each layer is weights -> [Batch Renormalization] -> activation, the output layer included.
Batch Renormalization's mode is chosen per call: 'train' while training, and at test time
'batch' (the thesis: each batch's own statistics with r = 1, d = 0, because the original never
saved rmax/dmax, so every test ran with Chainer's defaults) or 'running' (learned averages).
"""
import chainer
import chainer.functions as F
import chainer.links as L

from friendly.defaults import NETWORKS, PROTOCOL
from friendly.functions.angular import Angular
from friendly.functions.cuda_sigmoid import cuda_sigmoid
from friendly.functions.elastic_sigmoid import ElasticSigmoidLink
from runkit.cli import UserError
from runkit.renorm import BatchRenormalization

# Batch Renormalization at test time (runkit/renorm.py); 'batch' is the thesis's.
BN_MODE_MEANING = {
    'batch': "each test batch's own statistics, r = 1, d = 0 (plain Batch Normalization)",
    'running': 'the learned running averages',
}
BN_MODES = tuple(BN_MODE_MEANING)

# How the sigmoids (plain and Elastic) are computed, forward and backward: 'device' is the
# device's own arithmetic (on a CPU, numpy's float32 tanh, exactly 0 below x = -20); 'cuda' is
# Chainer's CUDA kernel, as the thesis's GPU computed it, on any device (cuda_sigmoid.py).
ARITHMETICS = ('device', 'cuda')


def _pairwise_difference_layer(in_size, out_size):
    from friendly.functions.pairwise_difference import PairwiseDifference
    side = int(round(in_size ** 0.5))
    return _FlatPairwiseDifference(PairwiseDifference(1, out_size, side))


class _FlatPairwiseDifference(chainer.Chain):
    """Pairwise Difference with one patch covering the whole 28x28 image -> (batch, out)."""

    def __init__(self, layer):
        super().__init__()
        with self.init_scope():
            self.pd = layer

    def forward(self, x):
        return F.reshape(self.pd(x), (x.shape[0], -1))


LAYERS = {
    'linear': lambda n_in, n_out: L.Linear(n_in, n_out),
    'angular': Angular,
    'pairwise_difference': _pairwise_difference_layer,
}
ACTIVATIONS = {   # name -> arithmetic -> a layer's activation
    'sigmoid': lambda arithmetic: cuda_sigmoid if arithmetic == 'cuda' else F.sigmoid,
    'elastic_sigmoid': lambda arithmetic: ElasticSigmoidLink(arithmetic=arithmetic),
    'none': lambda arithmetic: F.identity,
}


class FCNet(chainer.Chain):
    """Three layers (784 -> 100 -> 100 -> 10), each weights -> [batch renorm] -> activation."""

    # the hidden activations see their argument divided by this: 1 in every network trained
    # here; more only in the attacks' tempered surrogates (friendly/surrogates.py)
    temperature = 1.0

    def __init__(self, config, arithmetic='device'):
        super().__init__()
        if arithmetic not in ARITHMETICS:
            raise UserError('unknown arithmetic %r; choose one of %s'
                            % (arithmetic, ', '.join(ARITHMETICS)))
        self.config = config
        self.arithmetic = arithmetic
        sizes = (28 * 28,) + PROTOCOL['hidden']
        activations = [ACTIVATIONS[config.activation](arithmetic) for _ in config.layers]
        with self.init_scope():
            self.layers = chainer.ChainList(*[
                LAYERS[kind](n_in, n_out)
                for kind, n_in, n_out in zip(config.layers, sizes[:-1], sizes[1:])])
            self.batch_renorms = chainer.ChainList(*[
                BatchRenormalization(n_out, decay=PROTOCOL['batch_renorm_decay'])
                for n_out in sizes[1:]]) if config.batch_renorm else None
        # Links (Elastic Sigmoid) must be registered; plain functions are kept aside.
        if any(isinstance(a, chainer.Link) for a in activations):
            with self.init_scope():
                self.activations = chainer.ChainList(*activations)
        else:
            self.activations = activations

    def batch_renorm_links(self):
        return list(self.batch_renorms) if self.batch_renorms is not None else []

    def elastic_scales(self):
        """The Elastic Sigmoid scale s of each layer (0-d arrays); empty for other networks."""
        return [a.s.array.reshape(()) for a in self.activations
                if isinstance(a, ElasticSigmoidLink)]

    def forward(self, x, bn_mode='train'):
        return self.activations[-1](self._last_input(x, bn_mode))

    def logits(self, x, bn_mode='train', group=None):
        """(z, y): the logits z, the output layer's pre-activation outputs (for Elastic
        Sigmoid z = s h, the sigmoid's argument), and the outputs y = forward(x). Every output
        activation here is monotone (sigmoid, Elastic Sigmoid, none), so arg-max z is the
        prediction while z does not saturate. `group`: Batch Renormalization's, 'batch' mode."""
        h = self._last_input(x, bn_mode, group)
        last = self.activations[-1]
        y = last(h)
        if isinstance(last, ElasticSigmoidLink):
            return h * F.broadcast_to(last.s.reshape(()), h.shape), y
        return h, y

    def _last_input(self, x, bn_mode, group=None):
        """What the output layer's activation is applied to: every layer before it in full,
        then the output layer's weights and Batch Renormalization."""
        h = x
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            h = layer(h)
            if self.batch_renorms is not None:
                h = self.batch_renorms[k](h, bn_mode, group)
            if k < last:
                h = self.activations[k](h if self.temperature == 1 else h / self.temperature)
        return h


def build_network(name, arithmetic='device'):
    """The network named in thesis Table 3.1 ('S', 'RS', 'A', 'GMR', 'GMRES', 'PD', 'source'),
    its sigmoids computed in `arithmetic` (ARITHMETICS)."""
    if name not in NETWORKS:
        raise UserError('unknown network %r; choose one of %s' % (name, ', '.join(NETWORKS)))
    return FCNet(NETWORKS[name], arithmetic)
