"""Shared test fixtures: the MNIST folder and a small trained network."""
import importlib.util
import os
import warnings

import pytest

warnings.filterwarnings('ignore', message='.*nccl.*')  # CuPy without NCCL on CPU machines
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def load_pd_kernels(name):
    """friendly/pd_kernels.py loaded by path: the package __init__ (Chainer) is not needed."""
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, 'friendly', 'pd_kernels.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
