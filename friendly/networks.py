"""The FC-100-100-10 networks of thesis Table 3.1, built by name from `defaults.NETWORKS`.

Each layer is weights -> [Batch Renormalization] -> activation, the output layer included.
Batch Renormalization runs in one of three modes, chosen per call:
  'train'   batch statistics, running averages updated (training);
  'batch'   batch statistics, running averages left alone (the thesis's test mode);
  'running' the learned running averages (Chainer's usual inference; an option here).
"""
import chainer
import chainer.functions as F
import chainer.links as L

from friendly.angular import Angular
from friendly.cli import UserError
from friendly.defaults import NETWORKS, PROTOCOL
from friendly.elastic_sigmoid import ElasticSigmoidLink

BN_MODE_MEANING = {
    'train': 'batch statistics; running averages updated by every batch',
    'batch': 'batch statistics; running averages left alone',
    'running': 'the learned running averages',
}
BN_MODES = tuple(BN_MODE_MEANING)


def _pairwise_difference_layer(in_size, out_size):
    from friendly.pairwise_difference import PairwiseDifference
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
ACTIVATIONS = {
    'sigmoid': lambda: F.sigmoid,
    'elastic_sigmoid': ElasticSigmoidLink,
    'none': lambda: F.identity,
}


class Renorm(L.BatchRenormalization):
    """Batch Renormalization whose batch-statistics mode can leave the running averages alone.

    rmax/dmax are saved with the model: the thesis's test mode (batch statistics) uses them."""

    def __init__(self, size, rmax=1.0, dmax=0.0, **kwargs):
        # floats from the start: a saved float cannot be loaded into Chainer's int defaults
        super().__init__(size, rmax=float(rmax), dmax=float(dmax), **kwargs)
        self.register_persistent('rmax')
        self.register_persistent('dmax')

    def forward(self, x, mode='train'):
        if mode == 'running':
            with chainer.using_config('train', False):
                return super().forward(x)
        if mode == 'batch':
            with chainer.using_config('train', True):
                return F.batch_renormalization(
                    x, self.gamma, self.beta, self.rmax, self.dmax, self.eps,
                    self.avg_mean, self.avg_var, update_statistics=False)
        with chainer.using_config('train', True):
            return super().forward(x)


class FCNet(chainer.Chain):
    """Three layers (784 -> 100 -> 100 -> 10), each weights -> [renorm] -> activation."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        sizes = (28 * 28,) + PROTOCOL['hidden']
        activations = [ACTIVATIONS[config.activation]() for _ in config.layers]
        with self.init_scope():
            self.layers = chainer.ChainList(*[
                LAYERS[kind](n_in, n_out)
                for kind, n_in, n_out in zip(config.layers, sizes[:-1], sizes[1:])])
            self.renorms = chainer.ChainList(*[
                Renorm(n_out, decay=PROTOCOL['renorm_decay'])
                for n_out in sizes[1:]]) if config.renorm else None
        # Links (Elastic Sigmoid) must be registered; plain functions are kept aside.
        if any(isinstance(a, chainer.Link) for a in activations):
            with self.init_scope():
                self.activations = chainer.ChainList(*activations)
        else:
            self.activations = activations

    def renorm_links(self):
        return list(self.renorms) if self.renorms is not None else []

    def forward(self, x, bn_mode='train'):
        h = x
        for k, layer in enumerate(self.layers):
            h = layer(h)
            if self.renorms is not None:
                h = self.renorms[k](h, bn_mode)
            h = self.activations[k](h)
        return h


def build_network(name):
    """The network named in thesis Table 3.1 ('S', 'RS', 'A', 'GMR', 'GMRES', 'PD', 'source')."""
    if name not in NETWORKS:
        raise UserError('unknown network %r; choose one of %s' % (name, ', '.join(NETWORKS)))
    return FCNet(NETWORKS[name])
