"""Surrogate networks (beyond the thesis): the same network computed differently, whose input
gradients steer an attack (friendly/attacks.py) while every image is still scored by the real
network (Athalye et al. 2018's BPDA idea: a stand-in for the gradient only).

    cuda      functions/cuda_sigmoid.with_cuda_sigmoid(net, elastic=True): the thesis GPU's
              sigmoid arithmetic, Elastic Sigmoid included.
    float64   float64_copy(net): float64 throughout. Chainer's sigmoid, tanh(x/2)/2 + 1/2, is
              still exactly 0 from x ~ -38 on in float64 (as on the GPU), but every product
              and sum keeps 53 bits.
    tempered  tempered_copy(net, T) for each T of TEMPERATURES: the float64 copy whose hidden
              sigmoids see their argument divided by T,

                  h_k = sigmoid(a_k / T)   (Elastic Sigmoid: sigmoid(s a_k / T)),

              a smoother network with the same weights. A saturated sigmoid's gradient
              y (1 - y) ~ exp(-|a|) is not just small but dominated by the few least saturated
              units; dividing a by T lets every unit speak again, as dividing the logits by T
              undid defensive distillation's saturated softmax (Carlini & Wagner 2016). The
              output layer is not tempered: the attacks read its pre-activation logits.
"""
import numpy as np

from friendly.defaults import TEMPERATURES
from friendly.functions.cuda_sigmoid import with_cuda_sigmoid

KINDS = ('cuda', 'float64', 'tempered')
SIGMOIDS = ('sigmoid', 'elastic_sigmoid')   # the activations the surrogates change


def float64_copy(net):
    """A copy of a network computed in float64 throughout: its parameters and persistent
    statistics (Batch Renormalization's averages) converted to float64. Feed it float64
    images (attacks.py does). The copy owns its arrays: later changes to `net` do not reach
    it."""
    copy = net.copy(mode='copy')
    for param in copy.params(include_uninit=False):
        if param.array.dtype.kind == 'f':
            param.array = param.array.astype(np.float64)
            param.grad = None
    for link in copy.links():
        for name in getattr(link, '_persistent', ()):
            value = getattr(link, name)
            if hasattr(value, 'dtype') and value.dtype.kind == 'f':
                setattr(link, name, value.astype(np.float64))
    return copy


def tempered_copy(net, temperature):
    """float64_copy(net) whose hidden sigmoids (plain or Elastic) compute sigmoid(a / T); a
    network without sigmoids is left as the float64 copy (networks.FCNet.temperature)."""
    if temperature <= 0:
        raise ValueError('a temperature must be positive, not %r' % (temperature,))
    copy = float64_copy(net)
    if net.config.activation in SIGMOIDS:
        copy.temperature = float(temperature)
    return copy


def changes(net, kind):
    """Whether the surrogates of `kind` compute something the network and its float64 copy do
    not: 'cuda' and 'tempered' change only the sigmoids, so on a network without any (A) the
    first would be the network itself and the second its float64 copy three times over, i.e.
    only more random starts of columns that run anyway."""
    if kind not in KINDS:
        raise ValueError('unknown surrogate %r; choose one of %s' % (kind, ', '.join(KINDS)))
    return kind == 'float64' or net.config.activation in SIGMOIDS


def make(net, kind):
    """The surrogates of `net` of `kind` (KINDS), as a tuple: one network, or one per
    temperature."""
    if kind == 'cuda':
        return (with_cuda_sigmoid(net, elastic=True),)
    if kind == 'float64':
        return (float64_copy(net),)
    if kind == 'tempered':
        return tuple(tempered_copy(net, t) for t in TEMPERATURES)
    raise ValueError('unknown surrogate %r; choose one of %s' % (kind, ', '.join(KINDS)))
