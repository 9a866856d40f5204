"""MNIST from the four standard IDX files: verified, downloaded when missing, split as the thesis.

Images come back as float32 in [0, 255] shaped (N, 1, 28, 28) (no normalisation, thesis 3.3),
labels as int32. The folder is, in order: the `folder` argument, $FRIENDLY_MNIST_DIR, data/mnist/.
Each file may be gzip-compressed or raw; its *decompressed* bytes must match the SHA-256 below.
"""
import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zlib

import numpy as np

from runkit.cli import UserError

ENV_VAR = 'FRIENDLY_MNIST_DIR'
DEFAULT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           'data', 'mnist')
SHA256 = {
    'train-images-idx3-ubyte': 'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db',
    'train-labels-idx1-ubyte': '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5',
    't10k-images-idx3-ubyte': '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7',
    't10k-labels-idx1-ubyte': 'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2',
}
MIRRORS = (
    'https://ossci-datasets.s3.amazonaws.com/mnist/',
    'https://storage.googleapis.com/cvdf-datasets/mnist/',
)
DOWNLOAD_TIMEOUT_S = 30
VALIDATION_SIZE = 4200  # 7 % of the 60,000 training images (thesis)
_MAGIC = {3: 2051, 1: 2049}  # IDX magic number by number of dimensions (images, labels)


class MnistError(UserError):
    """A missing, damaged or unverifiable MNIST file."""


def data_folder(folder=None):
    """The MNIST folder: `folder`, else $FRIENDLY_MNIST_DIR, else data/mnist/."""
    return folder or os.environ.get(ENV_VAR) or DEFAULT_DIR


def _decompressed(path):
    with open(path, 'rb') as f:
        raw = f.read()
    if raw[:2] == b'\x1f\x8b':
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):
            raise MnistError('%s is a damaged gzip file (truncated or corrupt): delete it and '
                             'download it again' % path)
    return raw


def parse_idx(path, name):
    """Parse the IDX file `path` holding the standard file `name`; verify shape and SHA-256."""
    data = _decompressed(path)
    ndim = 3 if 'images' in name else 1
    if len(data) < 4 + 4 * ndim:
        raise MnistError('%s is truncated (%d bytes, no complete IDX header): delete it and '
                         'download it again' % (path, len(data)))
    magic = int.from_bytes(data[:4], 'big')
    if magic != _MAGIC[ndim]:
        raise MnistError('%s has IDX magic number %d, expected %d for %s: it is not that MNIST '
                         'file' % (path, magic, _MAGIC[ndim], name))
    shape = tuple(int.from_bytes(data[4 + 4 * k:8 + 4 * k], 'big') for k in range(ndim))
    expected = 4 + 4 * ndim + int(np.prod(shape))
    if len(data) != expected:
        raise MnistError('%s is truncated or padded (%d bytes, its header promises %d): delete '
                         'it and download it again' % (path, len(data), expected))
    if hashlib.sha256(data).hexdigest() != SHA256[name]:
        raise MnistError('%s fails its SHA-256 check (content differs from the official %s): '
                         'delete it and download it again' % (path, name))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _existing(folder, name):
    for candidate in (name + '.gz', name):
        path = os.path.join(folder, candidate)
        if os.path.exists(path):
            return path
    return None


def download(folder, name):
    """Fetch `name`.gz from a mirror into `folder`: temp file, verify, then rename into place."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise MnistError('cannot create MNIST folder %s (%s)' % (folder, err.strerror))
    target = os.path.join(folder, name + '.gz')
    errors = []
    for mirror in MIRRORS:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + name, suffix='.part')
        os.close(fd)
        try:
            with urllib.request.urlopen(mirror + name + '.gz', timeout=DOWNLOAD_TIMEOUT_S) as r, \
                    open(tmp, 'wb') as f:
                f.write(r.read())
            parse_idx(tmp, name)  # raises MnistError when the download is bad
            os.replace(tmp, target)
            return target
        except (urllib.error.URLError, OSError, MnistError) as err:
            errors.append('%s: %s' % (mirror, getattr(err, 'reason', err)))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise MnistError('%s is missing from %s and could not be downloaded (offline? %s); copy the '
                     'four MNIST files there or point --mnist-dir / $%s at a folder holding them'
                     % (name, folder, '; '.join(errors), ENV_VAR))


def load_file(name, folder=None, allow_download=True):
    """One standard MNIST file as a uint8 array, downloading it first when missing."""
    folder = data_folder(folder)
    if os.path.isdir(folder) and not os.access(folder, os.R_OK | os.X_OK):
        raise MnistError('MNIST folder %s is not readable: fix its permissions or point '
                         '--mnist-dir / $%s elsewhere' % (folder, ENV_VAR))
    path = _existing(folder, name)
    if path is None:
        if not allow_download:
            raise MnistError('%s is missing from %s: copy it there or allow downloading'
                             % (name, folder))
        path = download(folder, name)
    try:
        return parse_idx(path, name)
    except PermissionError:
        raise MnistError('%s is not readable: fix its permissions' % path)


def load_mnist(folder=None, allow_download=True):
    """((train_x, train_y), (test_x, test_y)): float32 (N,1,28,28) in [0,255], int32 labels."""
    def pair(prefix):
        x = load_file(prefix + '-images-idx3-ubyte', folder, allow_download)
        y = load_file(prefix + '-labels-idx1-ubyte', folder, allow_download)
        if len(x) != len(y):
            raise MnistError('%s images and labels disagree in count (%d vs %d)'
                             % (prefix, len(x), len(y)))
        return x.astype(np.float32)[:, None], y.astype(np.int32)
    return pair('train'), pair('t10k')


def split_validation(x, y, seed, validation_size=VALIDATION_SIZE):
    """Seeded random split into ((train_x, train_y), (val_x, val_y)); 55,800 / 4,200 for MNIST."""
    order = np.random.RandomState(seed).permutation(len(x))
    val, train = order[:validation_size], order[validation_size:]
    return (x[train], y[train]), (x[val], y[val])


def test_set(test_subset=None, mnist_dir=None):
    """The test images and labels, the first `test_subset` only when given."""
    _, (x, t) = load_mnist(mnist_dir)
    return (x[:test_subset], t[:test_subset]) if test_subset else (x, t)
