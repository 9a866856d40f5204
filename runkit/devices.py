"""Chainer device specs ('@numpy', '@cupy:0') checked before a run starts."""
import chainer

from runkit.cli import UserError


def get_device(spec):
    """The usable Chainer device named by `spec`, made current; a one-line UserError if not."""
    try:
        device = chainer.get_device(spec)
    except Exception as err:  # noqa: BLE001 - Chainer raises several types for a bad spec
        if not str(spec).startswith('@cupy'):
            raise UserError("unknown device %r; use '@numpy' or '@cupy:<gpu id>'" % (spec,)) \
                from None
        raise UserError('device %s is not usable here (%s); try --device @numpy'
                        % (spec, _first_line(err))) from None
    try:
        device.use()
        device.xp.zeros(1).sum()   # fails here, not mid-run, when e.g. CUDA has no GPU
    except Exception as err:  # noqa: BLE001 - any failure means the device cannot be used
        raise UserError('device %s is not usable here (%s); try --device @numpy'
                        % (spec, _first_line(err))) from None
    return device


def _first_line(err):
    return str(err).splitlines()[0] if str(err) else type(err).__name__
