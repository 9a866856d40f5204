"""Shared test fixtures: the MNIST folder."""
import os
import warnings

import pytest

import runkit.chainer_compat  # noqa: F401  (before any test imports Chainer)

warnings.filterwarnings('ignore', message='.*nccl.*')  # CuPy without NCCL on CPU machines


def mnist_dir():
    """The verified MNIST copy named by $FRIENDLY_MNIST_DIR, or data/mnist/ if it holds it."""
    from friendly import mnist
    folder = mnist.data_folder()
    names = list(mnist.SHA256)
    if all(os.path.exists(os.path.join(folder, n)) or
           os.path.exists(os.path.join(folder, n + '.gz')) for n in names):
        return folder
    return None


@pytest.fixture(scope='session')
def mnist_folder():
    folder = mnist_dir()
    if folder is None:
        pytest.skip('no MNIST copy: set FRIENDLY_MNIST_DIR to a folder with the four IDX files')
    return folder
