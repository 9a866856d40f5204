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
# The CPU-scale analogue of ConvolutionalLarge: the same family (convolutions, Batch
# Renormalization, one activation, a linear count layer) at about a tenth of the image size.
# Its stride-2 layers are box-smoothed (BoxSmoothedConvolution2D, kernel 4 from a learned 3x3),
# so that the saliency carries no stride grid; the receptive field (110 px) and the linear layer
# reach every pixel of a 96-pixel image. As in ConvolutionalLarge at 1000 px, the last layer
# leaves 20 maps of 2x2: 80 features.
CONVOLUTIONAL_SMALL_LAYERS = [
    (3, 12, 4, 2, 1), (12, 24, 4, 2, 1), (24, 32, 4, 2, 1), (32, 32, 3, 1, 1), (32, 32, 4, 2, 1),
    (32, 20, 4, 2, 0),
]
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


class BoxSmoothedConvolution2D(chainer.Link):
    """A stride-2 convolution whose 4x4 kernel is a learned 3x3 kernel v convolved with a 2x2 box.

    With W = v * box, the taps that reach even and odd input positions have the same sum
    (sum of v) in each direction, so a smooth gradient from above reaches every phase of the
    stride equally: no stride grid in the input gradient. A plain strided kernel weights the
    phases by different taps, which is the grid of the thesis's saliency pictures.
    """

    def __init__(self, in_channels, out_channels, pad, nobias=False):
        super().__init__()
        self.pad = pad
        with self.init_scope():
            self.v = chainer.Parameter(chainer.initializers.LeCunNormal(),
                                       (out_channels, in_channels, 3, 3))
            self.b = None if nobias else chainer.Parameter(0, (out_channels,))

    def kernel(self):
        v = self.v
        return (F.pad(v, ((0, 0), (0, 0), (0, 1), (0, 1)), 'constant') +
                F.pad(v, ((0, 0), (0, 0), (1, 0), (0, 1)), 'constant') +
                F.pad(v, ((0, 0), (0, 0), (0, 1), (1, 0)), 'constant') +
                F.pad(v, ((0, 0), (0, 0), (1, 0), (1, 0)), 'constant')) * 0.25

    def forward(self, x):
        return F.convolution_2d(x, self.kernel(), self.b, stride=2, pad=self.pad)


def unseen_pixels(size, layers):
    """Input rows (or columns) of `size` that no output of `layers` depends on, ascending.

    A window of layer k covers positions stride*i - pad .. stride*i - pad + ksize - 1 of its
    input; walking back from the last layer (all of whose outputs reach the linear layer) gives
    the positions that matter. ConvolutionalLarge at 1000 leaves 997..999 unseen, as the thesis's
    figures show (zero saliency there).
    """
    sizes = [size]
    for _, _, ksize, stride, pad in layers:
        sizes.append((sizes[-1] + 2 * pad - ksize) // stride + 1)
    seen = set(range(sizes[-1]))
    for (_, _, ksize, stride, pad), n_in in zip(reversed(layers), reversed(sizes[:-1])):
        seen = {p for i in seen for p in range(stride * i - pad, stride * i - pad + ksize)
                if 0 <= p < n_in}
    return sorted(set(range(size)) - seen)


def _spans(values):
    """'3, 7-9' for [3, 7, 8, 9]."""
    spans, start = [], values[0]
    for a, b in zip(values, values[1:] + [None]):
        if b != a + 1:
            spans.append(str(start) if start == a else '%d-%d' % (start, a))
            start = b
    return ', '.join(spans)


def forward_flops(layers, height, width):
    """Multiply-adds x 2 of one image's forward pass through the convolutions."""
    flops = 0
    for i, o, k, stride, pad in layers:
        height = (height + 2 * pad - k) // stride + 1
        width = (width + 2 * pad - k) // stride + 1
        flops += 2 * height * width * o * i * k * k
    return flops


class CountingNetwork(chainer.Chain):
    """Convolutions -> [Batch Renormalization] -> activation, then linear -> ReLU counts."""

    layers = None
    batch_renorm_decay = None
    bias_with_batch_renorm = False   # a bias before Batch Renormalization is redundant
    box_smoothed_strides = False     # stride-2 layers as BoxSmoothedConvolution2D (kernel 4)
    sees_every_pixel = False         # refuse image sizes that leave pixels unseen

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
        for what, size in (('rows', image_height), ('columns', image_width)):
            unseen = unseen_pixels(size, self.layers)
            if self.sees_every_pixel and unseen:
                raise ValueError('%s cannot see %s %s of a %d-pixel image; use an image size '
                                 'it covers, such as 96' % (type(self).__name__, what,
                                                           _spans(unseen), size))
        self.n_features = self.layers[-1][1] * out_h * out_w
        with self.init_scope():
            self.convs = chainer.ChainList(*[
                self._convolution(i, o, k, s, p, batch_renorm and not self.bias_with_batch_renorm)
                for i, o, k, s, p in self.layers])
            if batch_renorm:
                self.batch_renorms = chainer.ChainList(*[
                    BatchRenormalization(o, decay=self.batch_renorm_decay)
                    for _, o, _, _, _ in self.layers])
            self.out = L.Linear(self.n_features, n_types)

    def _convolution(self, i, o, k, s, p, nobias):
        if self.box_smoothed_strides and s == 2:
            if k != 4:
                raise ValueError('a box-smoothed stride-2 layer has kernel 4, not %d' % k)
            return BoxSmoothedConvolution2D(i, o, p, nobias=nobias)
        return L.Convolution2D(i, o, k, stride=s, pad=p, nobias=nobias)

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


class ConvolutionalSmall(CountingNetwork):
    """Six convolutions (12..32 maps, five box-smoothed at stride 2); the CPU analogue of
    ConvolutionalLarge (same Batch Renormalization decay, biases kept)."""
    layers = CONVOLUTIONAL_SMALL_LAYERS
    batch_renorm_decay = 0.95
    bias_with_batch_renorm = True
    box_smoothed_strides = True
    sees_every_pixel = True


class ConvolutionalLarge(CountingNetwork):
    """Ten convolutions (30..70 maps); Batch Renormalization decay 0.95; needs >= 835 pixels."""
    layers = CONVOLUTIONAL_LARGE_LAYERS
    batch_renorm_decay = 0.95
    bias_with_batch_renorm = True


def set_population_statistics(model, batches):
    """Set each Batch Renormalization's averages to the population statistics of its input,
    layer by layer (each layer sees the earlier ones already set): the mean and the unbiased
    variance over every image of `batches` (a function returning an iterable of input arrays,
    called once per layer), as Ioffe & Szegedy (2015, Algorithm 2) define inference. Also sets
    an untrained network's averages (0 and 1 at first, far from raw 0..255 pixels)."""
    xp = model.xp
    with chainer.using_config('train', False), chainer.using_config('enable_backprop', False):
        for k, link in enumerate(model.batch_renorms):
            total, squares, n = 0.0, 0.0, 0
            for x in batches():
                h = x
                for j in range(k + 1):
                    h = model.convs[j](h)
                    if j < k:
                        h = model.activation(model.batch_renorms[j](h))
                a = h.array.astype(xp.float64)
                total = total + a.sum(axis=(0, 2, 3))
                squares = squares + (a ** 2).sum(axis=(0, 2, 3))
                n += a.size // a.shape[1]
            mean = total / n
            link.avg_mean[...] = mean
            link.avg_var[...] = (squares / n - mean ** 2) * n / max(n - 1, 1)


# Registry: CLI names -> network class.
NETWORKS = {
    'convolutional': Convolutional,
    'convolutional_large': ConvolutionalLarge,
    'convolutional_small': ConvolutionalSmall,
}


def build(name, n_types, image_height, image_width, activation, batch_renorm):
    """A network from the registry; ValueError for unknown names or too-small images."""
    if name not in NETWORKS:
        raise ValueError('unknown network %r; choose from %s' % (name, ', '.join(NETWORKS)))
    return NETWORKS[name](n_types, image_height, image_width, activation, batch_renorm)
