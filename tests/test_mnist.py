"""MNIST loader: the verified copy loads; every kind of bad input gives one clear error."""
import functools
import gzip
import http.server
import os
import re
import threading

import numpy as np
import pytest

from friendly import mnist

LABELS = 't10k-labels-idx1-ubyte'


def test_loads_verified_copy(mnist_folder):
    (x, y), (xt, yt) = mnist.load_mnist(mnist_folder, allow_download=False)
    assert x.shape == (60000, 1, 28, 28) and x.dtype == np.float32
    assert xt.shape == (10000, 1, 28, 28) and yt.dtype == np.int32
    assert x.min() == 0 and x.max() == 255 and np.all(x == np.round(x))
    assert sorted(np.unique(y)) == list(range(10))
    (tx, ty), (vx, vy) = mnist.split_validation(x, y, seed=0)
    assert len(tx) == 55800 and len(vx) == 4200
    (tx2, _), (vx2, _) = mnist.split_validation(x, y, seed=0)
    assert np.array_equal(vx, vx2)  # seeded


@pytest.fixture
def labels_bytes(mnist_folder):
    for name in (LABELS + '.gz', LABELS):
        path = os.path.join(mnist_folder, name)
        if os.path.exists(path):
            with open(path, 'rb') as f:
                raw = f.read()
            return gzip.decompress(raw) if raw[:2] == b'\x1f\x8b' else raw


def _write(folder, data, gz=True):
    path = os.path.join(folder, LABELS + ('.gz' if gz else ''))
    with open(path, 'wb') as f:
        f.write(gzip.compress(data) if gz else data)
    return path


def test_raw_and_gzip_both_read(tmp_path, labels_bytes):
    _write(tmp_path, labels_bytes, gz=False)
    assert mnist.load_file(LABELS, str(tmp_path), allow_download=False).shape == (10000,)


@pytest.mark.parametrize('damage, message', [
    (lambda b: b'\x00\x00\x08\x03' + b[4:], 'magic number'),
    (lambda b: b[:5000], 'truncated'),
    (lambda b: b[:8] + bytes([(b[8] + 1) % 10]) + b[9:], 'SHA-256'),
])
def test_damaged_file_is_named(tmp_path, labels_bytes, damage, message):
    path = _write(tmp_path, damage(labels_bytes))
    with pytest.raises(mnist.MnistError) as err:
        mnist.load_file(LABELS, str(tmp_path), allow_download=False)
    assert message in str(err.value) and path in str(err.value)
    assert '\n' not in str(err.value)


def test_broken_gzip(tmp_path, labels_bytes):
    path = os.path.join(tmp_path, LABELS + '.gz')
    with open(path, 'wb') as f:
        f.write(gzip.compress(labels_bytes)[:100])
    with pytest.raises(mnist.MnistError, match='damaged gzip'):
        mnist.load_file(LABELS, str(tmp_path), allow_download=False)


def test_missing_file_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, 'MIRRORS', ('http://127.0.0.1:9/',))  # nothing listens there
    with pytest.raises(mnist.MnistError, match='could not be downloaded') as err:
        mnist.load_file(LABELS, str(tmp_path))
    assert LABELS in str(err.value)
    assert os.listdir(tmp_path) == []  # no partial file left behind


def test_unreadable_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist.os, 'access', lambda *a: False)  # root can read anything
    with pytest.raises(mnist.MnistError, match='not readable'):
        mnist.load_file(LABELS, str(tmp_path))


@pytest.fixture
def mirror(tmp_path, mnist_folder):
    """A local HTTP mirror serving gzip files from a folder the test fills."""
    served = tmp_path / 'served'
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, 'http://127.0.0.1:%d/' % server.server_address[1]
    server.shutdown()


def test_download_verifies_then_renames(tmp_path, mirror, monkeypatch, labels_bytes):
    served, url = mirror
    (served / (LABELS + '.gz')).write_bytes(gzip.compress(labels_bytes))
    monkeypatch.setattr(mnist, 'MIRRORS', (url,))
    target = tmp_path / 'mnist'
    labels = mnist.load_file(LABELS, str(target))
    assert labels.shape == (10000,)
    assert os.listdir(target) == [LABELS + '.gz']


def test_corrupt_download_leaves_nothing(tmp_path, mirror, monkeypatch, labels_bytes):
    served, url = mirror
    (served / (LABELS + '.gz')).write_bytes(gzip.compress(labels_bytes[:-1] + b'\x07'))
    monkeypatch.setattr(mnist, 'MIRRORS', (url,))
    target = tmp_path / 'mnist'
    with pytest.raises(mnist.MnistError, match='SHA-256'):
        mnist.load_file(LABELS, str(target))
    assert os.listdir(target) == []


def test_loader_reads_the_folder_named_by_the_variable(monkeypatch, tmp_path):
    named, other = tmp_path / 'named', tmp_path / 'other'
    named.mkdir()
    other.mkdir()
    path = _write(named, b'\x00\x00\x08\x01')  # a header cut short: the error shows it was read
    monkeypatch.setenv(mnist.ENV_VAR, str(named))
    with pytest.raises(mnist.MnistError, match='%s is truncated' % re.escape(path)):
        mnist.load_file(LABELS, allow_download=False)
    # a folder given by the caller wins over the variable
    with pytest.raises(mnist.MnistError, match='missing from %s:' % re.escape(str(other))):
        mnist.load_file(LABELS, str(other), allow_download=False)
