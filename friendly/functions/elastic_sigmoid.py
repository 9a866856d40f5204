"""Elastic Sigmoid (thesis 3.2.2): y = sigmoid(s * x) with one learnable scale s per layer.

    dy/dx = s * y (1 - y),        dy/ds = sum over elements of x * y (1 - y)

Shrinking |s| flattens the activation and so the input gradient that GMR penalises.

With the CUDA arithmetic (friendly/functions/cuda_sigmoid.py) the link computes what the original's
`F.sigmoid(scale * x)` computed on the thesis's GPU: the product s x rounded to float32, then
Chainer's CUDA sigmoid of it; gradients flow through both (double backward included).
"""
import chainer
import chainer.functions as F
from chainer import backend, function_node
from chainer.utils import type_check

from friendly.functions.cuda_sigmoid import cuda_sigmoid


class ElasticSigmoid(function_node.FunctionNode):
    """sigmoid(s * x) for an array x and a scalar-shaped (1,) parameter s."""

    def check_type_forward(self, in_types):
        type_check._argname(in_types, ('x', 's'))
        x_type, s_type = in_types
        type_check.expect(
            x_type.dtype.kind == 'f',
            s_type.dtype == x_type.dtype,
            s_type.shape == (1,),
        )

    def forward(self, inputs):
        x, s = inputs
        xp = backend.get_array_module(x)
        # tanh form: sigmoid(z) = (1 + tanh(z/2)) / 2 never overflows
        y = (xp.tanh(x * (s[0] * 0.5)) + 1) * 0.5
        self.retain_inputs((0, 1))
        self.retain_outputs((0,))
        return y.astype(x.dtype, copy=False),

    def backward(self, indexes, grad_outputs):
        x, s = self.get_retained_inputs()
        y, = self.get_retained_outputs()
        gy, = grad_outputs
        slope = gy * y * (1 - y)  # gy * sigmoid'(s x); differentiable in y, so double backprop works
        grads = []
        if 0 in indexes:
            grads.append(slope * F.broadcast_to(s.reshape(()), x.shape))
        if 1 in indexes:
            grads.append(F.sum(slope * x).reshape((1,)))
        return grads


def elastic_sigmoid(x, s):
    """sigmoid(s * x) with a learnable scale s of shape (1,)."""
    y, = ElasticSigmoid().apply((x, s))
    return y


class ElasticSigmoidLink(chainer.Link):
    """A layer's Elastic Sigmoid activation: owns the one scale s, initialised to 1;
    `arithmetic` 'device' (ours) or 'cuda' (the thesis GPU's, on any device)."""

    def __init__(self, initial_scale=1.0, arithmetic='device'):
        super().__init__()
        self.arithmetic = arithmetic
        with self.init_scope():
            self.s = chainer.Parameter(chainer.initializers.Constant(initial_scale), (1,))

    def forward(self, x):
        if self.arithmetic == 'cuda':
            return cuda_sigmoid(x * F.broadcast_to(self.s, x.shape))
        return elastic_sigmoid(x, self.s)
