"""Activations by name, including Modified SoftPlus log_b(1 + b^x) as a Chainer FunctionNode.

Modified SoftPlus with base b > 1:
    f(x)   = log_b(1 + b^x)            = softplus(x ln b) / ln b
    f'(x)  = 1 / (1 + b^-x)            = 1 - b^-f(x)        (so backward needs only the output)
    f''(x) = ln b * b^-x / (1 + b^-x)^2
"""
import functools
import math

import chainer.functions as F
import numpy
from chainer import function_node
from chainer.utils import type_check

from counting import defaults


# CuPy ElementwiseKernel sources (in params, out params, body); the body is also compiled
# with g++ by tests/test_counting_kernels_emulated.py, so it is checked without a GPU.
# y = (max(z, 0) + log1p(exp(-|z|))) / ln b with z = x ln b: stable for any sign of x.
FORWARD_KERNEL = ('T x, T log_b', 'T y',
                  'T z = x * log_b; y = (max(z, (T)0) + log1p(exp(-fabs(z)))) / log_b;')
# gx = gy * f'(x), with f'(x) = 1 - b^-y = -expm1(-y ln b).
GRAD_KERNEL = ('T y, T gy, T log_b', 'T gx', 'gx = -gy * expm1(-y * log_b);')


@functools.lru_cache(maxsize=None)
def _forward_kernel():
    import cupy
    return cupy.ElementwiseKernel(*FORWARD_KERNEL, 'modified_softplus_fwd')


@functools.lru_cache(maxsize=None)
def _grad_kernel():
    import cupy
    return cupy.ElementwiseKernel(*GRAD_KERNEL, 'modified_softplus_grad')


def _forward_numpy(x, log_b):
    z = x * log_b
    return ((numpy.maximum(z, 0) + numpy.log1p(numpy.exp(-numpy.abs(z)))) / log_b).astype(
        x.dtype, copy=False)


def _grad_numpy(y, gy, log_b):
    return (-gy * numpy.expm1(-y * log_b)).astype(y.dtype, copy=False)


class ModifiedSoftplus(function_node.FunctionNode):
    """y = log_b(1 + b^x), elementwise."""

    def __init__(self, base):
        if not base > 1:
            raise ValueError('Modified SoftPlus needs a base > 1, got %r' % (base,))
        self.base = base
        self.log_b = math.log(base)

    def check_type_forward(self, in_types):
        type_check._argname(in_types, ('x',))
        type_check.expect(in_types[0].dtype.kind == 'f')

    def forward_cpu(self, inputs):
        self.retain_outputs((0,))
        return _forward_numpy(inputs[0], self.log_b),

    def forward_gpu(self, inputs):
        self.retain_outputs((0,))
        x = inputs[0]
        return _forward_kernel()(x, x.dtype.type(self.log_b)),

    def backward(self, indexes, grad_outputs):
        y, = self.get_retained_outputs()
        gy, = grad_outputs
        return ModifiedSoftplusGrad(self.log_b).apply((y, gy))


class ModifiedSoftplusGrad(function_node.FunctionNode):
    """gx = gy * (1 - b^-y), the backward of ModifiedSoftplus written from its output y."""

    def __init__(self, log_b):
        self.log_b = log_b

    def forward_cpu(self, inputs):
        self.retain_inputs((0, 1))
        y, gy = inputs
        return _grad_numpy(y, gy, self.log_b),

    def forward_gpu(self, inputs):
        self.retain_inputs((0, 1))
        y, gy = inputs
        return _grad_kernel()(y, gy, y.dtype.type(self.log_b)),

    def backward(self, indexes, grad_outputs):
        # d gx / d gy = 1 - b^-y (the same node again); d gx / d y = gy ln b b^-y.
        y, gy = self.get_retained_inputs()
        ggx, = grad_outputs
        grads = []
        if 0 in indexes:
            grads.append(ggx * gy * self.log_b * F.exp(-self.log_b * y))
        if 1 in indexes:
            grads.append(ModifiedSoftplusGrad(self.log_b).apply((y, ggx))[0])
        return grads


def modified_softplus(x, base=defaults.MODIFIED_SOFTPLUS_BASE):
    """Modified SoftPlus log_b(1 + b^x) (thesis chapter 2); smooth, with f'' > 0 everywhere.

    Args:
        x: input Variable or array (float).
        base: b > 1 (default 1.1); larger b approaches ReLU.
    """
    y, = ModifiedSoftplus(base).apply((x,))
    return y


class Activation:
    """A named activation and whether its second derivative vanishes everywhere it exists."""

    def __init__(self, fn, zero_second_derivative=False):
        self.fn = fn
        self.zero_second_derivative = zero_second_derivative

    def __call__(self, x):
        return self.fn(x)


# Registry: CLI names -> activation. The localisation needs a non-zero second derivative.
ACTIVATIONS = {
    'relu': Activation(F.relu, zero_second_derivative=True),
    'sigmoid': Activation(F.sigmoid),
    'softplus': Activation(F.softplus),
    'sin': Activation(F.sin),
    'modified_softplus': Activation(modified_softplus),
}
