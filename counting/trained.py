"""A finished training run: its settings.json and model.npz, loaded back into a network."""
import json
import os

import chainer

from counting import networks
from runkit.cli import UserError

# What test.py and detect.py read from a counting run's settings.json.
RUN_KEYS = ('network', 'activation', 'batch_renorm', 'types', 'image_height', 'image_width',
            'input_scale', 'dataset_folder', 'test_names', 'seed', 'epochs')


def read_settings(run_dir):
    """The settings.json record of a finished counting run; UserError for anything else."""
    settings_path = os.path.join(run_dir, 'settings.json')
    if not os.path.exists(settings_path) or \
            not os.path.exists(os.path.join(run_dir, 'model.npz')):
        raise UserError('%s holds no finished run (settings.json and model.npz); train one with '
                        'counting/train.py' % run_dir)
    try:
        with open(settings_path) as f:
            settings = json.load(f)
    except ValueError as err:
        raise UserError('%s is not valid JSON (%s)' % (settings_path, err)) from None
    missing = [k for k in RUN_KEYS if not isinstance(settings, dict) or k not in settings]
    if missing:
        raise UserError('%s is not a counting run: its settings.json lacks %s; give a run '
                        'folder of counting/train.py' % (run_dir, ', '.join(missing)))
    if settings.get('finished') is False:
        raise UserError('%s is an unfinished run; continue it with counting/train.py --resume'
                        % run_dir)
    return settings


def build(settings, settings_path):
    """The untrained network a run's settings describe; UserError naming the file otherwise."""
    try:
        return networks.build(settings['network'], len(settings['types']),
                              settings['image_height'], settings['image_width'],
                              settings['activation'], settings['batch_renorm'])
    except ValueError as err:
        raise UserError('%s: %s' % (settings_path, err)) from None


def load(run_dir, device='@numpy'):
    """(model on `device`, settings dict) of the run in `run_dir`."""
    settings = read_settings(run_dir)
    model_path = os.path.join(run_dir, 'model.npz')
    model = build(settings, os.path.join(run_dir, 'settings.json'))
    try:
        chainer.serializers.load_npz(model_path, model)
    except Exception as err:  # noqa: BLE001 - any damage to the file ends the same way
        raise UserError('%s is not a readable model for its settings.json (%s: %s); '
                        'train it again with counting/train.py'
                        % (model_path, type(err).__name__, str(err).splitlines()[0]
                           if str(err) else '')) from None
    model.to_device(device)
    return model, settings


def held_out_indices(dataset, settings):
    """Indices in `dataset` of the run's held-out images; UserError when some are missing."""
    position = {n: i for i, n in enumerate(dataset.names)}
    missing = [n for n in settings['test_names'] if n not in position]
    if missing:
        raise UserError('%s lacks %d of the run\'s held-out images (e.g. %s); was it '
                        'regenerated? pass the dataset the run was trained on'
                        % (dataset.folder, len(missing), missing[0]))
    return [position[n] for n in settings['test_names']]
