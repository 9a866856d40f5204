"""friendly/training.py: a run killed mid-training and resumed ends with exactly the weights of
an uninterrupted run (also from the previous snapshot when the last is damaged); no run folder's
work is dropped unasked; the progress bar; early stopping on the epoch-mean training loss."""
import json
import os

import chainer
import numpy as np
import pytest
from chainer import training

from friendly import weights
from friendly.training import settings_for, train
from runkit.cli import UserError
from runkit.runs import json_form
from runkit.training import EarlyStopping


class Killed(Exception):
    pass


def _kill_after(monkeypatch, iterations):
    """Make the StandardUpdater raise after `iterations` updates, as a kill would stop it."""
    real = training.StandardUpdater.update_core
    calls = {'n': 0}

    def update_core(self):
        calls['n'] += 1
        if calls['n'] > iterations:
            raise Killed()
        real(self)
    monkeypatch.setattr(training.StandardUpdater, 'update_core', update_core)


def _params(run_dir):
    net, _ = weights.load_run(run_dir)
    return {name: param.array.copy() for name, param in net.namedparams()}, net


@pytest.mark.parametrize('network', ['RS', 'GMRES'])
def test_killed_and_resumed_run_ends_with_the_uninterrupted_weights(network, tmp_path,
                                                                   mnist_folder, monkeypatch):
    # 200 images = 10 iterations an epoch; RS's threshold is lowered so that its rmax/dmax
    # schedule starts in epoch 1 and steps every epoch: the resumed run must carry it on.
    from friendly import defaults
    monkeypatch.setitem(defaults.PROTOCOL, 'batch_renorm_loss_threshold', 10.0)
    monkeypatch.setitem(defaults.PROTOCOL, 'batch_renorm_step_epochs', 1)
    settings = settings_for(network, epochs=4, train_subset=200, seed=5)
    whole = str(tmp_path / 'whole')
    train(settings, whole, progress=False, mnist_dir=mnist_folder)

    cut = str(tmp_path / 'cut')
    with monkeypatch.context() as m:
        _kill_after(m, 25)   # in epoch 3, after the epoch-2 snapshot
        with pytest.raises(Killed):
            train(settings, cut, progress=False, mnist_dir=mnist_folder)
    assert not os.path.exists(os.path.join(cut, 'model.npz'))
    record = train(settings, cut, resume=True, progress=False, mnist_dir=mnist_folder)
    assert record['epochs_trained'] == 4

    expected, net_whole = _params(whole)
    got, net_cut = _params(cut)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    for a, b in zip(net_whole.batch_renorm_links(), net_cut.batch_renorm_links()):
        assert a.rmax == b.rmax and a.dmax == b.dmax
        np.testing.assert_array_equal(a.avg_mean, b.avg_mean)
    if network == 'RS':
        assert net_cut.batch_renorm_links()[0].rmax == 1000.0   # epochs 1-4: 1.1, 10, 100, 1000
    with open(os.path.join(whole, 'log')) as f:
        log_whole = [{k: v for k, v in e.items() if k != 'elapsed_time'} for e in json.load(f)]
    with open(os.path.join(cut, 'log')) as f:
        log_cut = [{k: v for k, v in e.items() if k != 'elapsed_time'} for e in json.load(f)]
    assert log_cut == log_whole


def test_progress_bar_shows_the_run_against_its_maximum_epochs(tmp_path, mnist_folder, capsys):
    # 1,000 images = 50 iterations an epoch: the bar's first update (iteration 100) is in epoch 2
    settings = settings_for('S', epochs=3, train_subset=1000)
    train(settings, str(tmp_path / 'S'), progress=True, mnist_dir=mnist_folder)
    out = capsys.readouterr().out
    assert '100 iter, 2 epoch / 3 epochs' in out and '66.67%' in out


def test_a_finished_run_is_reused_and_replaced_only_with_force(tmp_path, mnist_folder, capsys):
    out = str(tmp_path / 'S')
    settings = settings_for('S', epochs=1, train_subset=200)
    first = train(settings, out, progress=False, mnist_dir=mnist_folder)
    model = os.path.join(out, 'model.npz')
    made = os.stat(model).st_mtime_ns
    again = train(settings, out, progress=False, mnist_dir=mnist_folder)
    assert json_form(again) == json_form(first)
    assert 'already holds this run, finished; reusing it (--force trains it again)' in \
        capsys.readouterr().out
    assert os.stat(model).st_mtime_ns == made
    longer = settings_for('S', epochs=2, train_subset=200)
    with pytest.raises(UserError, match='holds a finished run with other settings; .*--force'):
        train(longer, out, progress=False, mnist_dir=mnist_folder)
    assert train(longer, out, force=True, progress=False,
                 mnist_dir=mnist_folder)['epochs_trained'] == 2


def test_an_interrupted_run_needs_resume_and_resume_needs_a_snapshot(tmp_path, mnist_folder,
                                                                   monkeypatch):
    settings = settings_for('S', epochs=2, train_subset=200)
    out = str(tmp_path / 'S')
    with monkeypatch.context() as m:
        _kill_after(m, 15)   # in epoch 2, after the epoch-1 snapshot
        with pytest.raises(Killed):
            train(settings, out, progress=False, mnist_dir=mnist_folder)
    with pytest.raises(UserError, match='holds an interrupted run; pass --resume to continue '
                                        'it, or --force to start over'):
        train(settings, out, progress=False, mnist_dir=mnist_folder)
    with pytest.raises(UserError, match='interrupted run with other settings'):
        train(settings_for('S', epochs=3, train_subset=200), out, resume=True, progress=False,
              mnist_dir=mnist_folder)
    with pytest.raises(UserError, match='nothing to resume in .*fresh .no snapshot.; drop '
                                        '--resume'):
        train(settings, str(tmp_path / 'fresh'), resume=True, progress=False,
              mnist_dir=mnist_folder)


def test_a_damaged_snapshot_is_named_and_the_previous_one_resumed_exactly(tmp_path, mnist_folder,
                                                                         monkeypatch, capsys):
    settings = settings_for('S', epochs=3, train_subset=200)
    whole = str(tmp_path / 'whole')
    train(settings, whole, progress=False, mnist_dir=mnist_folder)
    cut = str(tmp_path / 'cut')
    with monkeypatch.context() as m:
        _kill_after(m, 25)   # in epoch 3: snapshot (epoch 2) and snapshot.previous (epoch 1)
        with pytest.raises(Killed):
            train(settings, cut, progress=False, mnist_dir=mnist_folder)
    snapshot = os.path.join(cut, 'snapshot')
    with open(snapshot, 'r+b') as f:
        f.truncate(1000)
    assert train(settings, cut, resume=True, progress=False,
                 mnist_dir=mnist_folder)['epochs_trained'] == 3
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'snapshot %s (BadZipFile' % snapshot in err
    assert 'resuming from %s.previous instead' % snapshot in err
    assert os.path.exists(snapshot + '.damaged')
    expected, _ = _params(whole)
    got, _ = _params(cut)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)

    # the only snapshot damaged: one line naming it, and how to start over
    os.remove(os.path.join(cut, 'model.npz'))
    os.remove(snapshot + '.previous')
    with open(snapshot, 'r+b') as f:
        f.truncate(1000)
    with pytest.raises(UserError, match='cannot resume: snapshot .*snapshot .BadZipFile.* is '
                                        'damaged; --force starts the run over'):
        train(settings, cut, resume=True, progress=False, mnist_dir=mnist_folder)


class _FakeTrainer:
    """Just what EarlyStopping reads: updater.epoch and LogReport's log."""

    def __init__(self):
        self.updater = type('U', (), {'epoch': 0})()
        self.log = []

    def get_extension(self, name):
        assert name == 'LogReport'
        return type('R', (), {'log': self.log})()

    def end_epoch(self, loss):
        self.updater.epoch += 1
        self.log.append({'epoch': self.updater.epoch, 'main/total': loss})


def _stop_epoch(losses, stop, trainer=None):
    trainer = trainer or _FakeTrainer()
    for loss in losses:
        trainer.end_epoch(loss)
        if stop(trainer):
            return trainer.updater.epoch
    return None


def test_early_stopping_stops_patience_epochs_after_the_best_training_loss():
    # best at epoch 3; patience 4: stops at the end of epoch 7, not before
    losses = [5.0, 4.0, 1.0, 2.0, 1.5, 1.2, 1.1, 0.5, 0.4]
    assert _stop_epoch(losses, EarlyStopping(100, 4, 'main/total')) == 7
    # a new best resets the count; max_epochs caps it
    assert _stop_epoch([3, 2, 1, 0.5, 0.4], EarlyStopping(5, 2, 'main/total')) == 5
    assert _stop_epoch([1.0] * 30, EarlyStopping(100, 20, 'main/total')) == 21


def test_early_stopping_survives_a_snapshot_and_resume():
    losses = [5.0, 4.0, 1.0, 2.0, 1.5, 1.2, 1.1, 0.5]
    stop, trainer = EarlyStopping(100, 4, 'main/total'), _FakeTrainer()
    assert _stop_epoch(losses[:5], stop, trainer) is None
    saved = chainer.serializers.DictionarySerializer()
    stop.serialize(saved)
    resumed = EarlyStopping(100, 4, 'main/total')
    resumed.serialize(chainer.serializers.NpzDeserializer(saved.target))
    assert (resumed.best, resumed.best_epoch) == (1.0, 3)
    assert _stop_epoch(losses[5:], resumed, trainer) == 7


def test_early_stopping_names_a_missing_monitor():
    trainer = _FakeTrainer()
    trainer.end_epoch(1.0)
    with pytest.raises(ValueError, match='validation/main/loss'):
        EarlyStopping(100, 4, 'validation/main/loss')(trainer)
