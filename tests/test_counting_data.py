"""The decoded image cache: made once, reused while truths.json is unchanged, rebuilt after."""
import os
import shutil

import numpy as np
from PIL import Image

from counting import data as data_mod
from counting import defaults, sample


def make(folder, seed):
    s = dict(defaults.SAMPLER)
    s.update({'image_width': 40, 'image_height': 30, 'scale_bounds': (5, 9), 'seed': seed})
    sample.generate(folder, 6, 3, s, log=False)


def decoded_pngs(folder, names):
    return np.stack([np.asarray(Image.open(os.path.join(folder, n)).convert('RGB'))
                     .transpose(2, 0, 1) for n in names])


def test_cache_follows_truths_json(tmp_path):
    folder, other = str(tmp_path / 'a'), str(tmp_path / 'b')
    make(folder, seed=1)
    make(other, seed=2)
    first = data_mod.ShapeDataset(folder)
    np.testing.assert_array_equal(first.images, decoded_pngs(folder, first.names))
    cache = os.path.join(folder, 'decoded.npy')
    made = os.stat(cache).st_mtime_ns
    again = data_mod.ShapeDataset(folder)
    assert os.stat(cache).st_mtime_ns == made   # same truths.json: the cache is read, not made
    np.testing.assert_array_equal(again.images, first.images)

    # another dataset's images and truths.json over this one's, the old cache left in place
    for name in os.listdir(other):
        if name.endswith('.png') or name == 'truths.json':
            shutil.copy(os.path.join(other, name), os.path.join(folder, name))
    changed = data_mod.ShapeDataset(folder)
    expected = decoded_pngs(other, changed.names)
    assert not np.array_equal(expected, first.images)
    np.testing.assert_array_equal(changed.images, expected)
    np.testing.assert_array_equal(changed.counts, data_mod.ShapeDataset(other).counts)


def test_a_cache_that_cannot_fit_on_the_disk_is_one_line(tmp_path, monkeypatch):
    import collections
    import pytest
    from runkit.cli import UserError
    folder = str(tmp_path / 'a')
    make(folder, seed=1)
    usage = collections.namedtuple('usage', 'total used free')
    monkeypatch.setattr(data_mod.shutil, 'disk_usage', lambda path: usage(10 ** 9, 0, 1000))
    with pytest.raises(UserError, match=r'needs 0\.0 GB for decoded.npy, but only 0\.0 GB'):
        data_mod.ShapeDataset(folder)
    assert not os.path.exists(os.path.join(folder, 'decoded.npy'))
