"""Datasets written by counting/sample.py, decoded once into a uint8 cache beside the PNGs.

`decoded.npy` holds every image as uint8 (N, 3, H, W) in sorted-name order and is memory-mapped,
so even the 1000x1000 thesis set is not held in memory; `decoded.json` records which truths.json
it was made from, and a changed dataset is decoded again.
"""
import hashlib
import json
import os
import shutil

import numpy as np
from PIL import Image

from runkit.cli import UserError, helper_pool
from runkit.provenance import atomic_write, write_json


def read_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise UserError('%s not found: %s (make one with counting/sample.py)' % (what, path)) \
            from None
    except ValueError as err:
        raise UserError('%s is not valid JSON: %s (%s)' % (what, path, err)) from None


def _decode(path, shape=None):
    """(3, H, W) uint8 pixels of one PNG; a UserError names a missing, damaged or odd-sized one."""
    try:
        with Image.open(path) as im:
            image = np.asarray(im.convert('RGB'), dtype=np.uint8).transpose(2, 0, 1)
    except FileNotFoundError:
        raise UserError('%s is missing from its dataset (listed in truths.json); regenerate the '
                        'dataset with counting/sample.py' % path) from None
    except (OSError, ValueError) as err:
        raise UserError('%s is not a readable image (%s); regenerate the dataset with '
                        'counting/sample.py' % (path, err)) from None
    if shape is not None and image.shape != shape:
        raise UserError('%s is %dx%d, the other images of its dataset %dx%d'
                        % (path, image.shape[2], image.shape[1], shape[2], shape[1]))
    return image


def _decode_into(args):
    cache, folder, start, names = args
    images = np.load(cache, mmap_mode='r+')
    for k, name in enumerate(names):
        images[start + k] = _decode(os.path.join(folder, name), images.shape[1:])
    images.flush()


class ShapeDataset:
    """Images (uint8, memory-mapped), names, counts (float32, one column per type), shapes."""

    def __init__(self, folder, workers=1):
        self.folder = os.path.abspath(folder)
        truths_path = os.path.join(self.folder, 'truths.json')
        truths = read_json(truths_path, 'truths file')
        if not truths:
            raise UserError('dataset %s has no images' % self.folder)
        self.names = sorted(truths)
        self.types = list(truths[self.names[0]])
        self.counts = np.array([[truths[n][t] for t in self.types] for n in self.names],
                               dtype=np.float32)
        annotations_path = os.path.join(self.folder, 'annotations.json')
        self.annotations = (read_json(annotations_path, 'annotations file')
                            if os.path.exists(annotations_path) else None)
        with open(truths_path, 'rb') as f:
            key = hashlib.sha1(f.read()).hexdigest()
        self.images = self._load_cache(key, workers)

    def _load_cache(self, key, workers):
        cache = os.path.join(self.folder, 'decoded.npy')
        meta_path = os.path.join(self.folder, 'decoded.json')
        if os.path.exists(meta_path) and os.path.exists(cache):
            try:
                with open(meta_path) as f:
                    if json.load(f).get('truths_sha1') == key:
                        return np.load(cache, mmap_mode='r')
            except ValueError:   # a damaged or truncated cache: decode again
                print('decoded cache of %s is damaged; decoding the images again' % self.folder)
        first = _decode(os.path.join(self.folder, self.names[0]))
        shape = (len(self.names),) + first.shape
        needed, free = int(np.prod(shape)), shutil.disk_usage(self.folder).free
        if needed > free:
            raise UserError('decoding %s needs %.1f GB for decoded.npy, but only %.1f GB are free '
                            'there' % (self.folder, needed / 1e9, free / 1e9))

        def write(tmp):
            np.lib.format.open_memmap(tmp, mode='w+', dtype=np.uint8, shape=shape).flush()
            step = max(1, -(-len(self.names) // (4 * workers)))
            jobs = [(tmp, self.folder, s, self.names[s:s + step])
                    for s in range(0, len(self.names), step)]
            if workers > 1:
                with helper_pool(workers) as pool:
                    pool.map(_decode_into, jobs)
            else:
                for job in jobs:
                    _decode_into(job)

        atomic_write(cache, write)
        write_json(meta_path, {'truths_sha1': key, 'shape': list(shape)})
        return np.load(cache, mmap_mode='r')

    def __len__(self):
        return len(self.names)

    @property
    def image_size(self):
        return self.images.shape[2], self.images.shape[3]

    def shapes_of(self, index):
        """Ground-truth shapes (type, polygon, ...) of image `index`, if annotated."""
        if self.annotations is None:
            raise UserError('%s has no annotations.json (regenerate it with counting/sample.py)'
                            % self.folder)
        return self.annotations[self.names[index]]


class Examples:
    """Chainer dataset view: (float32 image * scale, counts) for the given indices."""

    def __init__(self, data, indices, scale):
        self.data = data
        self.indices = np.asarray(indices)
        self.scale = np.float32(scale)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        j = self.indices[i]
        return self.data.images[j].astype(np.float32) * self.scale, self.data.counts[j]


def split(n, test_fraction, seed):
    """Train and test indices: a seeded permutation, the last test_fraction for testing."""
    order = np.random.RandomState(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    return np.sort(order[:-n_test]), np.sort(order[-n_test:])
