"""Pairwise Difference (thesis 3.2.3).

For every patch, flattened in im2col order (channel, then row, then column) to v of length P:

    y_o = sum_i sum_j W[o, i*P + j] * sigmoid(v_i - v_j)

one output map per o, laid out like a convolution's. Two implementations, selected by name:

- "naive": Chainer functions composed over the full (patches, P, P) tensor; the reference, and
  differentiable any number of times.
- "lean": a FunctionNode that never holds that tensor (the thesis's unfinished plan): on the CPU it
  walks the reference elements i in chunks whose working memory stays under CPU_CHUNK_BYTES, on
  the GPU it launches the kernels of pairwise_difference.cu (pd_kernels.py). First derivatives
  only.
"""
import numpy

import chainer
import chainer.functions as F
from chainer import backend, function_node, initializers, link
from chainer.utils import conv, type_check

from friendly.functions import pd_kernels

# Working memory of the chunked CPU path (its two (patches, rows, P) buffers together).
CPU_CHUNK_BYTES = 16 * 2 ** 20

IMPLS = ('lean', 'naive')


def _whole_image(shape, ksize, pad):
    """True when the only patch is the whole image (the FC form): rows are then just reshapes."""
    return pad == 0 and shape[2] == shape[3] == ksize


def _patch_rows(x, ksize, stride, pad):
    """(v, out_h, out_w): v (batch*out_h*out_w, C*ksize*ksize), one patch per row, im2col order."""
    xp = backend.get_array_module(x)
    if _whole_image(x.shape, ksize, pad):  # im2col order is x's own (channel, row, column)
        return xp.ascontiguousarray(x.reshape(x.shape[0], -1)), 1, 1
    if isinstance(x, numpy.ndarray):
        col = conv.im2col_cpu(x, ksize, ksize, stride, stride, pad, pad)
    else:
        col = conv.im2col_gpu(x, ksize, ksize, stride, stride, pad, pad)
    batch, c, _, _, out_h, out_w = col.shape
    v = col.transpose(0, 4, 5, 1, 2, 3).reshape(batch * out_h * out_w, c * ksize * ksize)
    return xp.ascontiguousarray(v), out_h, out_w


def _image_grad(gv, x_shape, ksize, stride, pad, out_h, out_w):
    """Scatter the patch-row gradient gv back onto the image (col2im sums overlapping patches)."""
    batch, c, h, w = x_shape
    if _whole_image(x_shape, ksize, pad):
        return gv.reshape(x_shape)
    col = gv.reshape(batch, out_h, out_w, c, ksize, ksize).transpose(0, 3, 4, 5, 1, 2)
    if isinstance(gv, numpy.ndarray):
        return conv.col2im_cpu(col, stride, stride, pad, pad, h, w)
    xp = backend.get_array_module(gv)
    return conv.col2im_gpu(xp.ascontiguousarray(col), stride, stride, pad, pad, h, w)


def _maps(rows, batch, out_h, out_w):
    """(batch*out_h*out_w, O) -> (batch, O, out_h, out_w), contiguous."""
    xp = backend.get_array_module(rows)
    maps = rows.reshape(batch, out_h, out_w, -1).transpose(0, 3, 1, 2)
    return xp.ascontiguousarray(maps)


def _rows(maps):
    """(batch, O, out_h, out_w) -> (batch*out_h*out_w, O), contiguous."""
    xp = backend.get_array_module(maps)
    return xp.ascontiguousarray(maps.transpose(0, 2, 3, 1).reshape(-1, maps.shape[1]))


# --- chunked CPU path ---------------------------------------------------------------------

def _rows_per_chunk(n, p, itemsize, buffers):
    """Reference elements per chunk so that `buffers` (n, rows, p) arrays fit CPU_CHUNK_BYTES."""
    return max(1, min(p, CPU_CHUNK_BYTES // (buffers * n * p * itemsize)))


def _chunks(p, rows):
    for i0 in range(0, p, rows):
        yield i0, min(p, i0 + rows)


def _sigmoid_rows(v, i0, i1, buf):
    """s (n, i1-i0, p) = sigmoid(v[:, i0:i1, None] - v[:, None, :]), written into buf."""
    n, p = v.shape
    s = buf[:n * (i1 - i0) * p].reshape(n, i1 - i0, p)
    numpy.subtract(v[:, i0:i1, None], v[:, None, :], out=s)
    half = v.dtype.type(0.5)
    s *= half  # sigmoid(d) = tanh(d/2)/2 + 1/2: stable, and vectorised well by numpy
    numpy.tanh(s, out=s)
    s *= half
    s += half
    return s


def lean_forward_cpu(v, W):
    """y (N, O) from patch rows v (N, P), chunked over the reference elements i."""
    n, p = v.shape
    rows = _rows_per_chunk(n, p, v.itemsize, 1)
    buf = numpy.empty(n * rows * p, dtype=v.dtype)
    y_t = numpy.zeros((W.shape[0], n), dtype=v.dtype)
    for i0, i1 in _chunks(p, rows):
        s = _sigmoid_rows(v, i0, i1, buf).reshape(n, -1)
        # W's columns i0*P .. i1*P are exactly the pairs of this chunk; matmul (unlike dot)
        # reads the strided slice without copying it
        y_t += numpy.matmul(W[:, i0 * p:i1 * p], s.T)
    return numpy.ascontiguousarray(y_t.T)


def lean_backward_cpu(v, W, gy, need_v=True, need_W=True):
    """(gv, gW) for patch rows v (N, P) and output gradient gy (N, O); None where not needed."""
    n, p = v.shape
    rows = _rows_per_chunk(n, p, v.itemsize, 2)
    s_buf = numpy.empty(n * rows * p, dtype=v.dtype)
    g_buf = numpy.empty(n * rows * p, dtype=v.dtype) if need_v else None
    gv = numpy.zeros((n, p), dtype=v.dtype) if need_v else None
    gW = numpy.empty_like(W) if need_W else None
    for i0, i1 in _chunks(p, rows):
        s = _sigmoid_rows(v, i0, i1, s_buf)
        s2d = s.reshape(n, -1)
        cols = slice(i0 * p, i1 * p)
        if need_W:
            numpy.matmul(gy.T, s2d, out=gW[:, cols])  # gW[o, k] = sum_n gy[n, o] s[n, k]
        if need_v:
            g = g_buf[:s.size].reshape(n, -1)
            numpy.matmul(gy, W[:, cols], out=g)  # G[n, k] = sum_o gy[n, o] W[o, k]
            # -D = G * s * (s - 1), with s' = s (1 - s)
            g *= s2d
            s2d -= 1
            g *= s2d
            g = g.reshape(n, i1 - i0, p)
            gv[:, i0:i1] -= g.sum(axis=2)  # + sum_j D[n, i, j]
            gv += g.sum(axis=1)            # - sum_i D[n, i, j]
    return gv, gW


# --- function nodes -----------------------------------------------------------------------

class PairwiseDifferenceFunction(function_node.FunctionNode):
    """The lean Pairwise Difference: inputs (x, W), output (batch, O, out_h, out_w)."""

    def __init__(self, ksize, stride, pad):
        self.ksize, self.stride, self.pad = ksize, stride, pad

    def check_type_forward(self, in_types):
        type_check._argname(in_types, ('x', 'W'))
        x_type, w_type = in_types
        type_check.expect(
            x_type.dtype.kind == 'f',
            w_type.dtype == x_type.dtype,
            x_type.ndim == 4,
            w_type.ndim == 2,
            w_type.shape[1] == (x_type.shape[1] * self.ksize * self.ksize) ** 2,
        )

    def forward(self, inputs):
        self.retain_inputs((0, 1))
        x, W = inputs
        v, out_h, out_w = _patch_rows(x, self.ksize, self.stride, self.pad)
        if isinstance(x, numpy.ndarray):
            y = lean_forward_cpu(v, W)
        else:
            y = pd_kernels.forward(v, W)
        return _maps(y, x.shape[0], out_h, out_w),

    def backward(self, indexes, grad_outputs):
        x, W = self.get_retained_inputs()
        grads = iter(PairwiseDifferenceGrad(self, indexes).apply((x, W, grad_outputs[0])))
        return tuple(next(grads) if k in indexes else None for k in (0, 1))


class PairwiseDifferenceGrad(function_node.FunctionNode):
    """Gradients of the lean Pairwise Difference: outputs gx and/or gW, as `indexes` asks."""

    def __init__(self, forward_node, indexes):
        self.ksize = forward_node.ksize
        self.stride = forward_node.stride
        self.pad = forward_node.pad
        self.indexes = tuple(indexes)

    def forward(self, inputs):
        x, W, gy_maps = inputs
        need_x, need_W = 0 in self.indexes, 1 in self.indexes
        v, out_h, out_w = _patch_rows(x, self.ksize, self.stride, self.pad)
        gy = _rows(gy_maps)
        if isinstance(x, numpy.ndarray):
            gv, gW = lean_backward_cpu(v, W, gy, need_x, need_W)
        else:
            gv = pd_kernels.grad_patches(v, W, gy) if need_x else None
            gW = pd_kernels.grad_w(v, gy) if need_W else None
        outputs = []
        if need_x:
            outputs.append(_image_grad(gv, x.shape, self.ksize, self.stride, self.pad,
                                       out_h, out_w))
        if need_W:
            outputs.append(gW)
        return tuple(outputs)

    def backward(self, indexes, grad_outputs):
        raise NotImplementedError(
            'second derivatives of pairwise_difference(impl="lean") are not implemented; '
            'use impl="naive" where double back-propagation is needed')


def _naive(x, W, ksize, stride, pad):
    """The reference: Chainer functions over the full (patches, P, P) tensor."""
    batch, c = x.shape[:2]
    cols = F.im2col(x, ksize, stride, pad)  # (batch, P, out_h, out_w), im2col order
    out_h, out_w = cols.shape[2:]
    p = c * ksize * ksize
    v = F.reshape(F.transpose(cols, (0, 2, 3, 1)), (-1, p))
    n = v.shape[0]
    d = (F.broadcast_to(F.expand_dims(v, 2), (n, p, p)) -
         F.broadcast_to(F.expand_dims(v, 1), (n, p, p)))
    y = F.linear(F.reshape(F.sigmoid(d), (n, p * p)), W)  # (n, O)
    return F.transpose(F.reshape(y, (batch, out_h, out_w, -1)), (0, 3, 1, 2))


def _check_arguments(x, W, ksize, stride, pad, impl):
    if impl not in IMPLS:
        raise ValueError('unknown impl %r; known: %s' % (impl, ', '.join(IMPLS)))
    for name, value, least in (('ksize', ksize, 1), ('stride', stride, 1), ('pad', pad, 0)):
        if not isinstance(value, (int, numpy.integer)) or value < least:
            raise ValueError('%s must be an integer >= %d, got %r' % (name, least, value))
    if x.dtype not in (numpy.float32, numpy.float64):
        raise TypeError('x must be float32 or float64, got %s' % x.dtype)
    if W.dtype != x.dtype:
        raise TypeError('W must have the dtype of x (%s), got %s' % (x.dtype, W.dtype))
    if x.ndim != 4:
        raise ValueError('x must be 4-D (batch, channels, height, width), got shape %s'
                         % (x.shape,))
    if W.ndim != 2:
        raise ValueError('W must be 2-D (outputs, (ksize*ksize*channels)**2), got shape %s'
                         % (W.shape,))
    p = ksize * ksize * x.shape[1]
    if W.shape[1] != p * p:
        raise ValueError('wrong number of channels: W has %d columns, but %d channels with '
                         'ksize %d need (%d*%d*%d)**2 = %d'
                         % (W.shape[1], x.shape[1], ksize, ksize, ksize, x.shape[1], p * p))
    h, w = x.shape[2] + 2 * pad, x.shape[3] + 2 * pad
    if ksize > h or ksize > w:
        raise ValueError('patch %dx%d is larger than the padded image %dx%d'
                         % (ksize, ksize, h, w))


def pairwise_difference(x, W, ksize, stride=1, pad=0, impl='lean'):
    """Pairwise Difference over ksize x ksize patches of x (thesis 3.2.3).

    y[b, o, r, c] = sum_i sum_j W[o, i*P + j] * sigmoid(v_i - v_j), where v (length
    P = C*ksize*ksize, im2col order) is the patch of x[b] at output position (r, c).

    Args:
        x: (batch, C, H, W) float32 or float64.
        W: (out, P*P), same dtype.
        ksize, stride, pad: square patches, as in a convolution.
        impl: "lean" (no (patches, P, P) tensor; first derivatives only) or "naive"
            (the composed reference).

    Returns:
        Variable (batch, out, H', W').
    """
    _check_arguments(x, W, ksize, stride, pad, impl)
    if impl == 'naive':
        return _naive(x, W, ksize, stride, pad)
    y, = PairwiseDifferenceFunction(ksize, stride, pad).apply((x, W))
    return y


class PairwiseDifference(link.Link):
    """Pairwise Difference layer: W (out, (ksize*ksize*in)**2) uniform in [-1, 1], no bias."""

    def __init__(self, in_channels, out_channels, ksize, stride=1, pad=0, impl='lean'):
        super().__init__()
        if impl not in IMPLS:
            raise ValueError('unknown impl %r; known: %s' % (impl, ', '.join(IMPLS)))
        self.ksize, self.stride, self.pad, self.impl = ksize, stride, pad, impl
        p = in_channels * ksize * ksize
        with self.init_scope():
            self.W = chainer.Parameter(initializers.Uniform(1.0), (out_channels, p * p))

    def forward(self, x):
        return pairwise_difference(x, self.W, self.ksize, self.stride, self.pad, self.impl)
