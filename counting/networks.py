"""The thesis's counting networks: convolutions, a linear layer, one ReLU-clamped count per type.

Each conv is followed by Batch Renormalization (when enabled; Convolutional's convs then have no
bias, ConvolutionalLarge's keep theirs, as in the original networks) and the chosen activation. The final linear layer is sized from the input: 1000x1000 gives the thesis's
80 features for ConvolutionalLarge.

Batch Renormalization is runkit's link (shared with `friendly`): its rmax/dmax are saved with the
model and in trainer snapshots. Training renormalises; test mode (chainer.config.train False)
uses the running averages.
"""
import chainer
import chainer.functions as F
import chainer.links as L

from counting.activations import ACTIVATIONS
from runkit.renorm import BatchRenormalization

# (in, out, ksize, stride, pad) per convolution.
CONVOLUTIONAL_LAYERS = [(3, 10, 7, 5, 0), (10, 10, 7, 5, 0), (10, 10, 3, 5, 0)]
CONVOLUTIONAL_LARGE_LAYERS = [
    (3, 30, 7, 3, 0), (30, 40, 7, 3, 0), (40, 50, 7, 3, 0),
    (50, 60, 5, 1, 2), (60, 70, 5, 1, 2), (70, 60, 5, 1, 2),
    (60, 50, 5, 2, 0), (50, 40, 5, 2, 0), (40, 30, 3, 1, 0), (30, 20, 3, 1, 0),
]


def conv_output_size(size, layers):
    """Spatial size after `layers`; ValueError when the input is too small for them."""
    for k, (_, _, ksize, stride, pad) in enumerate(layers):
        out = (size + 2 * pad - ksize) // stride + 1
        if out < 1:
            raise ValueError('input of %d pixels is too small: layer %d (kernel %d) has no '
                             'output; use larger images' % (size, k + 1, ksize))
        size = out
    return size


class CountingNetwork(chainer.Chain):
    """Convolutions -> [Batch Renormalization] -> activation, then linear -> ReLU counts."""

    layers = None
    batch_renorm_decay = None
    bias_with_batch_renorm = False   # a bias before Batch Renormalization is redundant

    def __init__(self, n_types, image_height, image_width, activation='modified_softplus',
                 batch_renorm=True):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError('unknown activation %r; choose from %s'
                             % (activation, ', '.join(sorted(ACTIVATIONS))))
        self.activation_name = activation
        self.activation = ACTIVATIONS[activation]
        self.batch_renorm = batch_renorm
        out_h = conv_output_size(image_height, self.layers)
        out_w = conv_output_size(image_width, self.layers)
        self.n_features = self.layers[-1][1] * out_h * out_w
        with self.init_scope():
            self.convs = chainer.ChainList(*[
                L.Convolution2D(i, o, k, stride=s, pad=p, nobias=batch_renorm and not self.bias_with_batch_renorm)
                for i, o, k, s, p in self.layers])
            if batch_renorm:
                self.batch_renorms = chainer.ChainList(*[
                    BatchRenormalization(o, decay=self.batch_renorm_decay)
                    for _, o, _, _, _ in self.layers])
            self.out = L.Linear(self.n_features, n_types)

    def features(self, x):
        h = x
        for k, conv in enumerate(self.convs):
            h = conv(h)
            if self.batch_renorm:
                h = self.batch_renorms[k](h)
            h = self.activation(h)
        return h

    def forward(self, x):
        return F.relu(self.out(self.features(x)))

    def batch_renorm_links(self):
        return list(self.batch_renorms) if self.batch_renorm else []


class Convolutional(CountingNetwork):
    """Three convolutions (k7 s5, k7 s5, k3 s5, 10 maps each); Batch Renormalization decay 0.99."""
    layers = CONVOLUTIONAL_LAYERS
    batch_renorm_decay = 0.99


class ConvolutionalLarge(CountingNetwork):
    """Ten convolutions (30..70 maps); Batch Renormalization decay 0.95; needs >= 835 pixels."""
    layers = CONVOLUTIONAL_LARGE_LAYERS
    batch_renorm_decay = 0.95
    bias_with_batch_renorm = True


# Registry: CLI names -> network class.
NETWORKS = {
    'convolutional': Convolutional,
    'convolutional_large': ConvolutionalLarge,
}


def build(name, n_types, image_height, image_width, activation, batch_renorm):
    """A network from the registry; ValueError for unknown names or too-small images."""
    if name not in NETWORKS:
        raise ValueError('unknown network %r; choose from %s' % (name, ', '.join(NETWORKS)))
    return NETWORKS[name](n_types, image_height, image_width, activation, batch_renorm)
