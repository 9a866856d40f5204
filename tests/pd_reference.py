"""Pairwise Difference on patch rows in plain numpy, holding the full (N, P, P) tensor: what the
kernels and the chunked CPU path are compared with. Checked against a composition of Chainer
functions in tests/test_pairwise_difference.py.

v (N, P) patch rows, w (O, P*P) weights, gy (N, O) output gradients; w[o, i*P + j] multiplies
sigmoid(v[n, i] - v[n, j]) (thesis 3.2.3).
"""
import numpy


def sigmoid_pairs(v):
    """S (N, P*P) with S[n, i*P + j] = sigmoid(v[n, i] - v[n, j])."""
    d = v[:, :, None] - v[:, None, :]
    return (1 / (1 + numpy.exp(-d))).reshape(v.shape[0], -1)


def forward(v, w):
    """y (N, O) = S w^T."""
    return sigmoid_pairs(v) @ w.T


def grad_w(v, gy):
    """gw (O, P*P) = gy^T S."""
    return gy.T @ sigmoid_pairs(v)


def grad_patches(v, w, gy):
    """gv (N, P) by thesis eq. 3.2: row sums minus column sums of D = (gy w) * S (1 - S)."""
    n, p = v.shape
    s = sigmoid_pairs(v)
    d = ((gy @ w) * s * (1 - s)).reshape(n, p, p)
    return d.sum(axis=2) - d.sum(axis=1)
