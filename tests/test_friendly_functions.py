"""Angular and Elastic Sigmoid: numpy references, first and second derivatives."""
import chainer
import numpy as np
import pytest
from chainer import gradient_check

from friendly.functions.angular import DENOMINATOR_CONSTANT, AngularFunction, angular
from friendly.functions.elastic_sigmoid import ElasticSigmoid, ElasticSigmoidLink

RNG = np.random.RandomState(0)


def angular_reference(a, W, b, c=DENOMINATOR_CONSTANT):
    out = np.empty((len(a), len(W)))
    for n in range(len(a)):
        for o in range(len(W)):
            out[n, o] = a[n] @ W[o] / (np.linalg.norm(a[n]) * np.linalg.norm(W[o]) + c) + b[o]
    return out


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_angular_forward_matches_reference(dtype):
    a, W, b = RNG.randn(5, 7), RNG.randn(3, 7), RNG.randn(3)
    y = angular(a.astype(dtype), W.astype(dtype), b.astype(dtype)).array
    assert y.dtype == dtype
    np.testing.assert_allclose(y, angular_reference(a, W, b), rtol=1e-5 if dtype == np.float32
                               else 1e-12)


def test_angular_flattens_images_and_handles_blank_input():
    a = np.zeros((2, 1, 2, 2), np.float64)
    a[1] = RNG.rand(1, 2, 2)
    W, b = RNG.randn(3, 4), np.zeros(3)
    x = chainer.Variable(a)
    y = angular(x, W, b)
    assert y.shape == (2, 3) and np.all(y.array[0] == 0)
    y.grad = np.ones_like(y.array)
    y.backward()
    assert np.all(np.isfinite(x.grad))


def test_angular_gradients():
    a, W, b = RNG.randn(4, 6), RNG.randn(3, 6), RNG.randn(3)
    gy, ggs = RNG.randn(4, 3), (RNG.randn(4, 6), RNG.randn(3, 6), RNG.randn(3))
    f = lambda a, W, b: AngularFunction().apply((a, W, b))  # noqa: E731
    gradient_check.check_backward(f, (a, W, b), gy, dtype=np.float64)
    gradient_check.check_double_backward(f, (a, W, b), gy, ggs, dtype=np.float64)


@pytest.mark.parametrize('scale', [0.7, -1.3])
def test_elastic_sigmoid_forward_and_gradients(scale):
    x, s = RNG.randn(5, 4), np.array([scale])
    y = ElasticSigmoid().apply((x, s))[0].array
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-scale * x)), rtol=1e-12)
    f = lambda x, s: ElasticSigmoid().apply((x, s))  # noqa: E731
    gy, ggs = RNG.randn(5, 4), (RNG.randn(5, 4), RNG.randn(1))
    gradient_check.check_backward(f, (x, s), gy, dtype=np.float64)
    gradient_check.check_double_backward(f, (x, s), gy, ggs, dtype=np.float64)


def test_elastic_sigmoid_link_starts_at_one_and_learns():
    link = ElasticSigmoidLink()
    assert link.s.array.tolist() == [1.0]
    y = link(RNG.randn(3, 2).astype(np.float32))
    chainer.functions.sum(y).backward()
    assert link.s.grad.shape == (1,) and link.s.grad[0] != 0


def test_elastic_sigmoid_rejects_bad_scale_shape():
    with pytest.raises(chainer.utils.type_check.InvalidType):
        ElasticSigmoid().apply((np.zeros((2, 2), np.float32), np.ones((2,), np.float32)))
