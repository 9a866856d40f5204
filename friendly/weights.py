"""Trained networks on disk, and where the network trained with given settings is: the one
home of run folder and store file names, and of loading a network.

A run folder (runs/friendly/<protocol>/<network>[-seed<k>], runkit.runs.RunFolder) holds
model.npz and settings.json. The committed store (results/weights/friendly/) holds one
compressed file per (protocol, network, seed) and manifest.json, which records for each file its
training settings, epochs trained, final training loss, the commit that trained it and its
SHA-256; every load checks the checksum first. Model files are Chainer's npz layout, read with
numpy's allow_pickle=False: loading never unpickles.
"""
import collections
import glob
import json
import os

import chainer
import numpy as np

from friendly.defaults import NETWORKS
from friendly.networks import build_network
from runkit.cli import UserError, first_line
from runkit.provenance import atomic_write, sha256, write_json
from runkit.runs import RunFolder, json_form, runs_root

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STORE = os.path.join(CHECKOUT, 'results', 'weights', 'friendly')
MANIFEST = 'manifest.json'


def arithmetic_of(settings):
    """The sigmoid arithmetic a network was trained with ('device' unless its settings say)."""
    return settings.get('arithmetic', 'device')


def same_settings(a, b):
    """Whether two settings dicts are equal as JSON reads them back."""
    return json_form(a) == json_form(b)


def run_folder(settings):
    """runs/friendly/<protocol>/<network>, with -seed<k> when the seed is not the default."""
    name = settings['network']
    if settings['seed'] != NETWORKS[name].seed:
        name += '-seed%d' % settings['seed']
    return os.path.join(runs_root('friendly'), settings['protocol'], name)


def finished_run(settings):
    """The record of the finished run trained with exactly `settings`, in its run folder, else
    None."""
    record = RunFolder(run_folder(settings)).finished_record()
    return record if record and same_settings(record.get('settings'), settings) else None


def save_model(path, net, compress=False):
    """Atomically write `net`'s parameters and persistent values (rmax/dmax included)."""
    atomic_write(path, lambda tmp: chainer.serializers.save_npz(tmp, net, compression=compress))


def read_model(path, network, arithmetic='device'):
    """A fresh `network` (a Table 3.1 name, its sigmoids in `arithmetic`) with the parameters
    stored in `path`."""
    net = build_network(network, arithmetic)
    try:
        with np.load(path, allow_pickle=False) as npz:
            chainer.serializers.NpzDeserializer(npz).load(net)
    except Exception as err:  # noqa: BLE001 - any damage to the file ends the same way
        raise UserError('%s is not a readable model of network %s (%s)'
                        % (path, network, first_line(err)))
    return net


def load_run(run_dir, device='@numpy'):
    """(network on `device`, settings) of a finished run folder of friendly/train.py."""
    folder = RunFolder(run_dir)
    if not os.path.exists(folder.model_path) or not os.path.exists(folder.settings_path):
        raise UserError('%s holds no finished run (model.npz and settings.json); train it '
                        'first with friendly/train.py' % run_dir)
    try:
        settings = folder.record()['settings']
        network = settings['network']
    except (KeyError, TypeError):
        raise UserError('%s is not a settings file written by friendly/train.py'
                        % folder.settings_path) from None
    net = read_model(folder.model_path, network, arithmetic_of(settings))
    net.to_device(device)
    return net, settings


def load_any(path, device='@numpy'):
    """(network, its name) from a run folder or a committed weights file in a store."""
    if os.path.isdir(path):
        net, settings = load_run(path, device)
        return net, settings['network']
    store = os.path.dirname(os.path.abspath(path))
    # a file may sit in a protocol subfolder of the store: look for the manifest upwards
    for _ in range(2):
        if os.path.exists(os.path.join(store, MANIFEST)):
            entry = next((e for e in read_manifest(store).values()
                          if os.path.abspath(os.path.join(store, e['file']))
                          == os.path.abspath(path)), None)
            if entry is not None:
                return load_committed(entry, device, store), entry['network']
        store = os.path.dirname(store)
    if not os.path.exists(path):
        raise UserError('%s holds no finished run and is no weights file' % path)
    raise UserError('%s is not listed in a weights manifest (%s) beside it' % (
        path, MANIFEST))


def file_name(settings):
    """<protocol>/<network>-seed<k>.npz: one file per protocol, network and seed."""
    return '%s/%s-seed%d.npz' % (settings['protocol'], settings['network'], settings['seed'])


def read_manifest(store=None):
    """{file name: entry} of the store (default: the committed one); empty when the store holds
    no weights yet, a one-line error when it holds weights but no manifest."""
    path = os.path.join(store or STORE, MANIFEST)
    if not os.path.exists(path):
        if glob.glob(os.path.join(store or STORE, '**', '*.npz'), recursive=True):
            raise UserError('%s is missing, so the weights in that folder cannot be checked; '
                            'restore it (in the repository: git checkout -- %s)'
                            % (path, os.path.relpath(os.path.join(STORE, MANIFEST), CHECKOUT)))
        return {}
    try:
        with open(path) as f:
            return json.load(f)['weights']
    except (ValueError, KeyError, TypeError):
        raise UserError('%s is not a weights manifest' % path) from None


def find(settings, store=None):
    """The store's entry trained with exactly `settings`, or None."""
    entry = read_manifest(store).get(file_name(settings))
    return entry if entry and same_settings(entry['settings'], settings) else None


def find_entry(manifest, name, seed, protocol):
    """The manifest entry of network `name` with `seed`: trained with `protocol` if there is
    one, else with a capped variant of it (e.g. thesis-e20); None if absent."""
    found = [e for e in manifest.values() if e['network'] == name and e['seed'] == seed
             and (e['protocol'] == protocol or e['protocol'].startswith(protocol + '-'))]
    found.sort(key=lambda e: (e['protocol'] != protocol, e['protocol']))
    return found[0] if found else None


def load_committed(entry, device='@numpy', store=None):
    """The network of a manifest entry, after checking that its file is the one recorded."""
    store = store or STORE
    path = os.path.join(store, entry['file'])
    if not os.path.exists(path):
        raise UserError('%s is missing (listed in %s)' % (path, os.path.join(store, MANIFEST)))
    if sha256(path) != entry['sha256']:
        raise UserError('%s does not match its SHA-256 in %s: the file is damaged or was '
                        'changed' % (path, MANIFEST))
    net = read_model(path, entry['network'], arithmetic_of(entry['settings']))
    net.to_device(device)
    return net


def load_stored(store, name, seed, protocol, device='@numpy'):
    """(network, manifest entry) of `name` with `seed` in `store` (find_entry), or (None, None)
    if absent."""
    entry = find_entry(read_manifest(store), name, seed, protocol)
    if entry is None:
        return None, None
    return load_committed(entry, device, store), entry


class Found(collections.namedtuple('Found', 'settings origin entry folder record')):
    """Where the network trained with `settings` is (locate): 'committed' (its manifest `entry`
    in the store `folder`) or 'run' (its run `folder` and `record`)."""
    __slots__ = ()

    def load(self, device='@numpy'):
        if self.origin == 'committed':
            return load_committed(self.entry, device, self.folder)
        return load_run(self.folder, device)[0]

    def describe(self):
        """Training facts, from the manifest entry or the run record."""
        if self.origin == 'committed':
            e = self.entry
            return {'epochs': e['epochs_trained'], 'early_stopped': e['early_stopped'],
                    'best_validation_epoch': e['best_validation_epoch'],
                    'final_training_loss': e['final_training_loss'],
                    'train_device': e['trained_on'], 'train_commit': e['trained_at_commit'],
                    'train_wall_time_s': e['train_wall_time_s'], 'weights': e['file'],
                    'weights_sha256': e['sha256']}
        r = self.record
        return {'epochs': r['epochs_trained'], 'early_stopped': r['early_stopped'],
                'best_validation_epoch': r['best_validation_epoch'],
                'final_training_loss': r['final_training_loss'],
                'train_device': r['provenance']['device'],
                'train_commit': r['provenance']['commit'],
                'train_wall_time_s': r['wall_time_s'], 'run_folder': self.folder}

    def training_log(self):
        """The per-epoch LogReport entries the network was trained with."""
        if self.origin == 'committed':
            with open(os.path.join(self.folder, self.entry['log'])) as f:
                return json.load(f)
        return RunFolder(self.folder).read_log()


def locate(settings, store=None):
    """The network trained with exactly `settings`: committed (in `store`, then in the
    repository's store), else a finished run in its run folder; None if neither."""
    for folder in dict.fromkeys([store or STORE, STORE]):
        entry = find(settings, folder)
        if entry:
            return Found(settings, 'committed', entry, folder, None)
    record = finished_run(settings)
    if record:
        return Found(settings, 'run', None, run_folder(settings), record)
    return None


def export(run_dir, record, store=None):
    """Copy a finished run's model (compressed) and its per-epoch log into the store, and
    record them in the manifest."""
    store = store or STORE
    manifest = read_manifest(store)
    settings = record['settings']
    name = file_name(settings)
    net, _ = load_run(run_dir)
    path = os.path.join(store, name)
    save_model(path, net, compress=True)
    write_json(path[:-len('.npz')] + '.log.json', RunFolder(run_dir).read_log())
    manifest[name] = {
        'file': name, 'network': settings['network'], 'seed': settings['seed'],
        'protocol': settings['protocol'], 'arithmetic': arithmetic_of(settings),
        'epochs_trained': record['epochs_trained'],
        'early_stopped': record['early_stopped'],
        'final_training_loss': record['final_training_loss'],
        'best_validation_epoch': record['best_validation_epoch'],
        'trained_at_commit': record['provenance']['commit'],
        'trained_on': record['provenance']['device'],
        'train_wall_time_s': record['wall_time_s'],
        'sha256': sha256(path), 'log': name[:-len('.npz')] + '.log.json',
        'settings': settings,
    }
    write_json(os.path.join(store, MANIFEST), {
        'about': 'Trained networks of friendly/ (thesis Table 3.1), written by '
                 'friendly/evaluate.py --results; load with friendly.weights (checksum first).',
        'weights': dict(sorted(manifest.items()))})
    return manifest[name]
