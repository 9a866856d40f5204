"""A finished training run: its settings.json and model.npz, loaded back into a network."""
import json
import os

import chainer

from counting import networks
from runkit.cli import UserError


def load(run_dir, device='@numpy'):
    """(model on `device`, settings dict) of the run in `run_dir`."""
    settings_path = os.path.join(run_dir, 'settings.json')
    model_path = os.path.join(run_dir, 'model.npz')
    if not os.path.exists(settings_path) or not os.path.exists(model_path):
        raise UserError('%s holds no finished run (settings.json and model.npz); train one with '
                        'counting/train.py' % run_dir)
    with open(settings_path) as f:
        settings = json.load(f)
    model = networks.build(settings['network'], len(settings['types']),
                           settings['image_height'], settings['image_width'],
                           settings['activation'], settings['batch_renorm'])
    try:
        chainer.serializers.load_npz(model_path, model)
    except Exception as err:  # noqa: BLE001 - any damage to the file ends the same way
        raise UserError('%s is not a readable model for %s (%s)'
                        % (model_path, settings_path, type(err).__name__))
    model.to_device(chainer.get_device(device))
    return model, settings


def get_device(spec):
    """chainer.get_device with a one-line error for specs that do not name a usable device."""
    try:
        device = chainer.get_device(spec)
        device.use()
        device.xp.zeros(1).sum()   # fails here, not mid-run, when e.g. CUDA has no GPU
        return device
    except Exception as err:  # noqa: BLE001 - any failure means the device cannot be used
        raise UserError('device %s is not usable here (%s); try --device @numpy'
                        % (spec, str(err).splitlines()[0] if str(err) else type(err).__name__)) \
            from None
