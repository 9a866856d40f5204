"""Chainer's sigmoid as its CUDA kernel computes it, for any device (beyond the thesis: the
diagnostic of Table 3.2's FGSM columns).

Chainer 7.8.1 computes sigmoid(x) = tanh(x/2)/2 + 1/2 on both devices, but not in the same
precision. On the CPU, numpy evaluates tanh in float32, so y takes steps of 2^-25 below
x ~ -17 and is exactly 0 from x = -20 on, where its derivative y(1 - y) vanishes. On a GPU the
elementwise kernel `y = tanh(x * 0.5) * 0.5 + 0.5` multiplies by the C++ double literal 0.5:
tanh runs in float64 and y is rounded to float32 once, so y stays positive down to x ~ -38.
Both round to exactly 1 from x ~ 17.3 on.

    y = float32(tanh(float64(x) / 2) / 2 + 1/2),        dy/dx = y (1 - y)   (as Chainer's)

The thesis's networks were trained and attacked with CuPy, so their saturated sigmoids kept
the tiny negative-side gradients whose signs FGSM uses.

Beyond the thesis, `with_cuda_sigmoid(net)` is also one of the surrogates of a reliable
evaluation (friendly/surrogates.py): the same parameters in an arithmetic whose saturated
sigmoids keep a gradient, used to steer an attack on the real network.
"""
import chainer
import numpy as np
from chainer import backend, function_node
from chainer.functions.activation.sigmoid import SigmoidGrad
from chainer.utils import type_check


class CudaSigmoid(function_node.FunctionNode):

    def check_type_forward(self, in_types):
        type_check._argname(in_types, ('x',))
        type_check.expect(in_types[0].dtype.kind == 'f')

    def forward(self, inputs):
        x, = inputs
        xp = backend.get_array_module(x)
        y = xp.tanh(x.astype(np.float64) * 0.5) * 0.5 + 0.5
        self.retain_outputs((0,))
        return y.astype(x.dtype, copy=False),

    def backward(self, indexes, grad_outputs):
        # Chainer's own gradient node: gy y (1 - y) rounds the same on both devices, and its
        # backward is the one a GPU's double backward (GMR's penalty) ran
        y, = self.get_retained_outputs()
        return SigmoidGrad((None,)).apply((y, grad_outputs[0]))   # None: no cuDNN input


def cuda_sigmoid(x):
    """sigmoid(x) computed as Chainer's CUDA kernel does, on numpy or CuPy arrays."""
    y, = CudaSigmoid().apply((x,))
    return y


def with_cuda_sigmoid(net, elastic=False):
    """A copy of an FCNet (parameters shared) whose plain sigmoid activations are
    `cuda_sigmoid`: the thesis GPU's arithmetic (the diagnostic of friendly/tables.py, Elastic
    Sigmoid left as it is). `elastic`: the Elastic Sigmoid links too, where they offer the
    CUDA arithmetic: the surrogate of the attacks (attacks.py), whose gradients survive where
    numpy's float32 sigmoid is saturated."""
    copy = net.copy(mode='share')
    if not isinstance(copy.activations, chainer.ChainList):   # plain functions, not links
        copy.activations = [cuda_sigmoid if a is chainer.functions.sigmoid else a
                            for a in copy.activations]
    elif elastic:   # Elastic Sigmoid links: the copy's own links, their scales shared
        for link in copy.activations:
            if hasattr(link, 'arithmetic'):
                link.arithmetic = 'cuda'
    return copy
