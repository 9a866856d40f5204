"""Chainer device specs ('@numpy', '@cupy:0') checked before a run starts."""
import importlib.util

import chainer

from runkit.cli import UserError, first_line


def get_device(spec):
    """The usable Chainer device named by `spec`, made current; a one-line UserError if not."""
    gpu = str(spec).startswith('@cupy')
    if gpu and importlib.util.find_spec('cupy') is None:
        raise UserError('device %s needs CuPy, which is not installed (pip install -e ".[gpu]"); '
                        'try --device @numpy' % spec)
    try:
        device = chainer.get_device(spec)
    except Exception as err:  # noqa: BLE001 - Chainer raises several types for a bad spec
        if not gpu:
            raise UserError("unknown device %r; use '@numpy' or '@cupy:<gpu id>'" % (spec,)) \
                from None
        raise UserError('device %s is not usable here (%s); try --device @numpy'
                        % (spec, first_line(err))) from None
    try:
        device.use()
        device.xp.zeros(1).sum()   # fails here, not mid-run, when e.g. CUDA has no GPU
    except Exception as err:  # noqa: BLE001 - any failure means the device cannot be used
        raise UserError('device %s is not usable here (%s); try --device @numpy'
                        % (spec, first_line(err))) from None
    return device
