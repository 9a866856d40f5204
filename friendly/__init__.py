"""MNIST FC-100-100-10 networks with the thesis's adversarial defences (thesis chapter 3)."""
import runkit.chainer_compat  # noqa: F401  (before Chainer: NumPy 2 / Python 3.12+ / CuPy 14)
