"""Counting training: exact resume, settings-keyed reuse of datasets and runs, lr stages."""
import json
import os

import numpy as np
import pytest

import counting  # noqa: F401
import chainer

from counting import defaults, sample, training
from runkit.cli import UserError

DATASET = {'image_width': 96, 'image_height': 96, 'shape_limit': 3, 'num_images': 20,
        'shape_types': ['tri', 'sq'], 'scale_bounds': [8, 14], 'limit_scale_resampling': False,
        'seed': 3}


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp('counting') / 'data')
    return training.ensure_dataset(folder, DATASET)


def tiny_settings():
    """3 epochs of 18 training images in batches of 4 (epochs end mid-batch), with rmax/dmax
    stepping every epoch from the first: 1.1, 10, 100."""
    s = training.resolve_settings('small', {'epochs': 3, 'batch_size': 4, 'lr_stages': 3})
    s['batch_renorm_loss_threshold'] = 1e9
    s['batch_renorm_step_epochs'] = 1
    return s


class Killed(Exception):
    """Stands for the process being killed mid-training."""


def model_arrays(out):
    with np.load(os.path.join(out, 'model.npz')) as f:
        return {k: f[k] for k in f.files}


def epoch_losses(out):
    with open(os.path.join(out, 'log')) as f:
        return [entry['main/loss'] for entry in json.load(f)]


def test_killed_and_resumed_run_equals_uninterrupted_run(dataset, tmp_path, monkeypatch):
    s = tiny_settings()
    whole, killed = str(tmp_path / 'whole'), str(tmp_path / 'killed')
    training.train(s, dataset, whole, snapshot_every=1, progress=False)

    update_core = chainer.training.StandardUpdater.update_core
    done = []

    def dies_after_11_updates(self):   # epoch 3 starts with update 10 (36 of 18-image epochs)
        if len(done) == 11:
            raise Killed()
        done.append(1)
        update_core(self)

    monkeypatch.setattr(chainer.training.StandardUpdater, 'update_core', dies_after_11_updates)
    with pytest.raises(Killed):
        training.train(s, dataset, killed, snapshot_every=1, progress=False)
    monkeypatch.undo()
    assert os.path.exists(os.path.join(killed, 'snapshot_epoch_2'))
    assert not os.path.exists(os.path.join(killed, 'snapshot_epoch_3'))
    assert not os.path.exists(os.path.join(killed, 'model.npz'))
    training.train(s, dataset, killed, resume='latest', snapshot_every=1, progress=False)

    expected, got = model_arrays(whole), model_arrays(killed)
    assert sorted(got) == sorted(expected)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    rmax = [k for k in expected if k.endswith('/rmax')]
    assert len(rmax) == 6 and all(expected[k] == 100 for k in rmax)   # the schedule ran
    assert any(k.endswith('/avg_mean') for k in expected)
    assert epoch_losses(killed) == epoch_losses(whole)


def test_snapshot_holds_the_batch_renorm_schedule(dataset, tmp_path):
    s = tiny_settings()
    s['epochs'] = 1
    out = str(tmp_path / 'run')
    record = training.train(s, dataset, out, snapshot_every=1, progress=False)
    assert record['batch_renorm_rmax'] == [1.1] * 6
    with np.load(os.path.join(out, 'snapshot_epoch_1')) as f:
        rmax = [f[k] for k in f.files if k.endswith('/rmax')]
        dmax = [f[k] for k in f.files if k.endswith('/dmax')]
    assert len(rmax) == len(dmax) == 6
    np.testing.assert_allclose(rmax + dmax, 1.1)


def test_resume_refuses_other_settings(dataset, tmp_path):
    s = tiny_settings()
    s['epochs'] = 1
    out = str(tmp_path / 'run')
    training.train(s, dataset, out, snapshot_every=1, progress=False)
    s['lr'] = s['lr'] * 2
    with pytest.raises(UserError, match='other settings'):
        training.train(s, dataset, out, resume='latest', progress=False)


def test_dataset_is_reused_only_for_the_same_sampler_settings(dataset, capsys):
    assert training.ensure_dataset(dataset, DATASET) == dataset
    assert 'reusing' in capsys.readouterr().out
    other = dict(DATASET, seed=4, scale_bounds=[8, 12])
    with pytest.raises(UserError, match=r'other sampler settings \(scale_bounds, seed\); '
                                        r'delete the folder'):
        training.ensure_dataset(dataset, other)


def test_dataset_without_sampler_record_is_not_reused(tmp_path):
    folder = str(tmp_path / 'data')
    sample.generate(folder, 2, 1, training.sampler_request(DATASET)[2], log=False)
    os.remove(os.path.join(folder, 'sample_settings.json'))
    with pytest.raises(UserError, match='no sample_settings.json'):
        training.ensure_dataset(folder, DATASET)


def test_lr_stages_split_the_run_equally():
    assert training.lr_stage_ends(100, 3) == [33, 67]
    assert training.lr_stage_ends(40, 4) == [10, 20, 30]
    assert training.lr_stage_ends(40, 1) == []


def test_settings_come_from_the_preset_and_the_flags():
    s = training.resolve_settings('thesis', {'lr': 0.01, 'epochs': None})
    assert s['lr'] == 0.01 and s['epochs'] == 100 and s['network'] == 'convolutional_large'
    assert s['batch_renorm_steps'] == list(defaults.TRAIN['batch_renorm_steps'])
    assert s['batch_renorm_loss_threshold'] == 3.0 and s['lr_stages'] == 3
    with pytest.raises(UserError, match='test-fraction'):
        training.resolve_settings('small', {'test_fraction': 1.5})


def test_a_damaged_snapshot_is_named_and_the_one_before_it_used(dataset, tmp_path, capsys):
    s = tiny_settings()
    s['epochs'] = 2
    whole, out = str(tmp_path / 'whole'), str(tmp_path / 'run')
    training.train(s, dataset, whole, snapshot_every=1, progress=False)
    training.train(s, dataset, out, snapshot_every=1, progress=False)
    os.remove(os.path.join(out, 'model.npz'))
    with open(os.path.join(out, 'snapshot_epoch_2'), 'r+b') as f:
        f.truncate(1000)
    training.train(s, dataset, out, resume='latest', snapshot_every=1, progress=False)
    assert 'snapshot_epoch_2' in capsys.readouterr().err
    assert os.path.exists(os.path.join(out, 'snapshot_epoch_2.damaged'))
    expected, got = model_arrays(whole), model_arrays(out)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    os.remove(os.path.join(out, 'snapshot_epoch_1'))
    with pytest.raises(UserError, match='nothing to resume'):
        training.train(s, dataset, str(tmp_path / 'empty'), resume='latest', progress=False)


def test_training_progress_reads_each_kept_snapshot_as_the_network_of_that_epoch(dataset,
                                                                                tmp_path):
    from counting import chapter2, trained
    out = str(tmp_path / 'run')
    training.train(tiny_settings(), dataset, out, snapshot_every=1, progress=False)
    assert chapter2.snapshot_epochs(out) == [1, 2, 3]
    progress = chapter2.measure_progress(out, images=1)
    assert sorted(progress) == ['1', '2', '3']
    final = chapter2.measure_network(out, images=1, examples=0)[0]
    assert progress['3']['counting'] == final['counting']     # the last snapshot is the model
    assert progress['1']['counting']['mae'] != final['counting']['mae']
    assert set(progress['1']['regions']) == set(final['regions'])
    assert trained.load(out)[1]['epochs'] == 3
    assert trained.read_settings(out)['test_statistics'] == {'population_statistics_images': 18}
