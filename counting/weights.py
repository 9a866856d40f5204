"""The committed counting networks: results/weights/counting/<preset>/ and manifest.json.

Each preset's folder is a finished run folder reduced to model.npz, settings.json and its
per-epoch log, so `counting.trained.load` reads it like any run; manifest.json records the SHA-256
of the first two, and every load checks them first.
"""
import json
import os
import shutil

from counting import trained
from runkit.cli import UserError
from runkit.provenance import atomic_write, sha256, write_json

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STORE = os.path.join(CHECKOUT, 'results', 'weights', 'counting')
MANIFEST = 'manifest.json'
FILES = ('model.npz', 'settings.json')


def read_manifest(store=None):
    """{preset: entry}; empty when the store has no manifest."""
    store = store or STORE
    path = os.path.join(store, MANIFEST)
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            return json.load(f)['networks']
    except (ValueError, KeyError, TypeError):
        raise UserError('%s is not a counting weights manifest' % path) from None


def verified_folder(preset, store=None):
    """The store's folder of `preset` after checking its files' SHA-256; None when absent."""
    store = store or STORE
    entry = read_manifest(store).get(preset)
    if entry is None:
        return None
    folder = os.path.join(store, preset)
    for name in FILES:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            raise UserError('%s is missing (listed in %s)' % (path, os.path.join(store, MANIFEST)))
        if sha256(path) != entry['sha256'][name]:
            raise UserError('%s does not match its SHA-256 in %s: the file is damaged or was '
                            'changed' % (path, os.path.join(store, MANIFEST)))
    return folder


def export(preset, run_dir, store=None):
    """Copy a finished run's model.npz and settings.json into the store; record their hashes."""
    store = store or STORE
    record = trained.read_settings(run_dir)
    folder = os.path.join(store, preset)
    os.makedirs(folder, exist_ok=True)
    for name in FILES + ('log',):   # the per-epoch log comes along, for reading only
        if name == 'log' and not os.path.exists(os.path.join(run_dir, name)):
            continue
        atomic_write(os.path.join(folder, name),
                     lambda tmp, name=name: shutil.copyfile(os.path.join(run_dir, name), tmp))
    manifest = read_manifest(store)
    manifest[preset] = {
        'folder': preset, 'sha256': {name: sha256(os.path.join(folder, name)) for name in FILES},
        'trained_at_commit': record['provenance']['commit'],
        'trained_on': record['provenance']['device'],
        'train_seconds': record['seconds'], 'epochs': record['epochs'],
    }
    write_json(os.path.join(store, MANIFEST), {
        'about': 'counting networks behind results/counting (counting/make_results.py); '
                 'each folder is a run folder of counting/train.py',
        'networks': manifest})
    return folder
