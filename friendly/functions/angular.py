"""Angular neurons (thesis 3.2.4): a cosine similarity with a softened denominator.

For an input row a and weight row w_o:

    y_o = (w_o . a) / (|w_o| |a| + c) + lenience_o,        c = 0.2

With D_o = |w_o| |a| + c and upstream gradient g_o (per sample):

    dL/da   = sum_o g_o [ w_o / D_o - (w_o . a) |w_o| a / (|a| D_o^2) ]
    dL/dw_o = sum_n g_o [ a / D_o - (w_o . a) |a| w_o / (|w_o| D_o^2) ]
    dL/dlenience_o = sum_n g_o
"""
import chainer
import chainer.functions as F
from chainer import backend, function_node
from chainer.utils import type_check

DENOMINATOR_CONSTANT = 0.2


def _safe(norm):
    """A norm Variable with zeros replaced by one: the term it divides is then 0 * a / 1 = 0."""
    return norm + (norm.array == 0).astype(norm.dtype)


class AngularFunction(function_node.FunctionNode):
    """Angular layer on a (batch, in) input with weights (out, in) and lenience (out,)."""

    def __init__(self, constant=DENOMINATOR_CONSTANT):
        self.constant = constant

    def check_type_forward(self, in_types):
        type_check._argname(in_types, ('a', 'W', 'lenience'))
        a_type, w_type, b_type = in_types
        type_check.expect(
            a_type.dtype.kind == 'f',
            w_type.dtype == a_type.dtype,
            b_type.dtype == a_type.dtype,
            a_type.ndim == 2,
            w_type.ndim == 2,
            b_type.ndim == 1,
            a_type.shape[1] == w_type.shape[1],
            b_type.shape[0] == w_type.shape[0],
        )

    def forward(self, inputs):
        a, W, lenience = inputs
        xp = backend.get_array_module(a)
        dot = a.dot(W.T)
        denominator = xp.sqrt((a * a).sum(1))[:, None] * xp.sqrt((W * W).sum(1))[None, :]
        self.retain_inputs((0, 1))
        return (dot / (denominator + self.constant) + lenience).astype(a.dtype, copy=False),

    def backward(self, indexes, grad_outputs):
        # Written with Chainer functions so that the gradient is itself differentiable.
        a, W = self.get_retained_inputs()
        g, = grad_outputs
        norm_a = F.sqrt(F.sum(a * a, axis=1))                       # (n,)
        norm_w = F.sqrt(F.sum(W * W, axis=1))                       # (o,)
        dot = F.matmul(a, W, transb=True)                           # (n, o)
        denominator = (F.broadcast_to(norm_a[:, None], dot.shape)
                       * F.broadcast_to(norm_w[None, :], dot.shape) + self.constant)
        q = g / denominator                                         # g / D
        r = g * dot / (denominator * denominator)                   # g (w.a) / D^2
        grads = []
        if 0 in indexes:
            coeff = F.matmul(r, norm_w[:, None])[:, 0] / _safe(norm_a)
            grads.append(F.matmul(q, W) - F.broadcast_to(coeff[:, None], a.shape) * a)
        if 1 in indexes:
            coeff = F.matmul(r, norm_a[:, None], transa=True)[:, 0] / _safe(norm_w)
            grads.append(F.matmul(q, a, transa=True) - F.broadcast_to(coeff[:, None], W.shape) * W)
        if 2 in indexes:
            grads.append(F.sum(g, axis=0))
        return grads


def angular(a, W, lenience, constant=DENOMINATOR_CONSTANT):
    """y = (a W^T) / (|a| |W_rows| + constant) + lenience; a is flattened to (batch, in)."""
    a = F.reshape(a, (a.shape[0], -1))
    y, = AngularFunction(constant).apply((a, W, lenience))
    return y


class Angular(chainer.Link):
    """Angular layer: weights Uniform(-1, 1) shaped (out, in), per-output lenience starting at 0."""

    def __init__(self, in_size, out_size, constant=DENOMINATOR_CONSTANT):
        super().__init__()
        self.constant = constant
        with self.init_scope():
            self.W = chainer.Parameter(chainer.initializers.Uniform(1.0), (out_size, in_size))
            self.lenience = chainer.Parameter(0.0, (out_size,))

    def forward(self, x):
        return angular(x, self.W, self.lenience, self.constant)
