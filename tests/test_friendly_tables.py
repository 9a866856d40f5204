"""Tables 3.2/3.3 from committed weights: the store's checks, the thesis test mode, the command."""
import json
import os
import subprocess
import sys

import chainer
import numpy as np
import pytest

from friendly import evaluate, mnist, tables, training, weights
from friendly.functions.cuda_sigmoid import with_cuda_sigmoid
from friendly.networks import build_network
from runkit.cli import UserError
from runkit.renorm import BatchRenormalization
from thesis_reference import fgsm_accuracy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def store(tmp_path_factory, mnist_folder):
    """A weights store holding an S (seed 1) and the source, each trained for one short epoch."""
    runs = tmp_path_factory.mktemp('runs')
    folder = str(tmp_path_factory.mktemp('store'))
    for name in ('S', 'source'):
        settings = training.settings_for(name, epochs=1, train_subset=200)
        run = str(runs / name)
        record = training.train(settings, run, progress=False, mnist_dir=mnist_folder)
        weights.export(run, record, folder)
    return folder


def _entry(store, network):
    return next(e for e in weights.read_manifest(store).values() if e['network'] == network)


def test_manifest_records_what_made_each_file(store):
    entry = _entry(store, 'S')
    assert entry['sha256'] == weights.sha256(os.path.join(store, entry['file']))
    assert entry['epochs_trained'] == 1 and entry['seed'] == 1
    assert entry['settings']['train_subset'] == 200
    assert entry['trained_at_commit'] and entry['final_training_loss'] > 0
    net = weights.load_committed(entry, store=store)
    assert isinstance(net, chainer.Chain)


def test_damaged_file_is_a_one_line_error_naming_it(store, tmp_path):
    entry = _entry(store, 'S')
    path = os.path.join(store, entry['file'])
    with open(path, 'rb') as f:
        data = bytearray(f.read())
    copy = tmp_path / 'copy'
    (copy / os.path.dirname(entry['file'])).mkdir(parents=True)
    data[len(data) // 2] ^= 0xFF
    (copy / entry['file']).write_bytes(bytes(data))
    with pytest.raises(UserError, match='S-seed1.npz does not match its SHA-256'):
        weights.load_committed(entry, store=str(copy))


def test_missing_file_is_named(store, tmp_path):
    with pytest.raises(UserError, match='S-seed1.npz is missing'):
        weights.load_committed(_entry(store, 'S'), store=str(tmp_path))


def test_wrong_network_is_named(store):
    # the manifest says RS, the file (checksum intact) holds an S: no Batch Renormalization
    entry = dict(_entry(store, 'S'), network='RS')
    with pytest.raises(UserError, match='S-seed1.npz is not a readable model of network RS'):
        weights.load_committed(entry, store=store)


def test_loading_never_unpickles(tmp_path):
    path = str(tmp_path / 'evil.npz')
    np.savez(path, **{'layers/0/W': np.array([object()], dtype=object)})
    with pytest.raises(UserError, match='evil.npz is not a readable model'):
        weights.read_model(path, 'S')


def _numpy_batch_norm(h, gamma, beta, eps):
    mean, var = h.mean(axis=0), h.var(axis=0)
    return gamma * (h - mean) / np.sqrt(var + eps) + beta


def test_batch_mode_is_plain_batch_normalisation_whatever_rmax_dmax():
    """The thesis's test mode: r = 1, d = 0 on each batch's own statistics, even after training
    set rmax = dmax = 1.1 and the running averages far from the batch's."""
    rng = np.random.RandomState(0)
    net = build_network('RS')
    for link in net.batch_renorm_links():
        link.rmax = link.dmax = 1.1
        link.avg_mean[...] = rng.uniform(-3, 3, link.avg_mean.shape)
        link.avg_var[...] = rng.uniform(0.1, 5, link.avg_var.shape)
        link.gamma.array[...] = rng.uniform(0.5, 2, link.gamma.shape)
        link.beta.array[...] = rng.uniform(-1, 1, link.beta.shape)
    before = [link.avg_mean.copy() for link in net.batch_renorm_links()]
    x = rng.uniform(0, 255, (50, 1, 28, 28)).astype(np.float32)
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        got = net(x, 'batch').array

    h = x.reshape(50, -1).astype(np.float64)
    for layer, link in zip(net.layers, net.batch_renorm_links()):
        h = h @ layer.W.array.T.astype(np.float64) + layer.b.array
        h = _numpy_batch_norm(h, link.gamma.array, link.beta.array, link.eps)
        h = 1 / (1 + np.exp(-h))
    np.testing.assert_allclose(got, h, rtol=1e-4, atol=1e-5)
    for link, old in zip(net.batch_renorm_links(), before):
        np.testing.assert_array_equal(link.avg_mean, old)   # neither used nor updated
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        running = net(x, 'running').array
    assert np.abs(running - got).max() > 1e-2   # the other mode really is different


def test_batch_renormalization_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match='unknown Batch Renormalization mode'):
        BatchRenormalization(3, decay=0.8)(np.zeros((2, 3), np.float32), 'trian')


def _run_evaluate(monkeypatch, capsys, store, runs, *argv):
    monkeypatch.setattr(weights, 'STORE', store)
    monkeypatch.setenv('LENSES_RUNS', str(runs))
    monkeypatch.setattr(sys, 'argv', ['friendly/evaluate.py'] + list(argv))
    evaluate.main()
    return capsys.readouterr().out


def test_table_from_committed_weights_trains_nothing(store, tmp_path, monkeypatch, capsys,
                                                     mnist_folder):
    argv = ['--from-weights', '--networks', 'S', '--seeds', '1', '--epochs', '1',
            '--train-subset', '200', '--test-subset', '400', '--mnist-dir', mnist_folder]
    out = _run_evaluate(monkeypatch, capsys, store, tmp_path / 'runs', *argv)
    assert 'Table 3.3 clean' in out and 'at once' not in out
    assert '[1/1] S seed 1: clean and fgsm, white- and black-box, on 400 images: ' in out
    assert '[1/1] S seed 1: the same with the CUDA sigmoid: ' in out
    assert '[1/1] S seed 1: done in ' in out
    written = (tmp_path / 'runs' / 'friendly' / 'tables' / 'thesis-e1-n200-S-seeds1-test400' /
               'tables.json')
    table = json.loads(written.read_text())
    row = table['networks']['S']
    # the same numbers as Table 3.2's measurement on the committed networks, and the
    # CUDA-sigmoid diagnostic is that measurement on the converted networks
    x, t = mnist.test_set(400, mnist_folder)
    victim = weights.load_committed(_entry(store, 'S'), store=store)
    source = weights.load_committed(_entry(store, 'source'), store=store)
    direct = fgsm_accuracy(victim, source, x, t)
    on_cuda = fgsm_accuracy(with_cuda_sigmoid(victim), with_cuda_sigmoid(source), x, t)
    for key, _ in tables.ROWS:
        assert row[key] == direct[key]
        assert row['seeds'][0][key + '_cuda_sigmoid'] == on_cuda[key]
        assert row['over_seeds'][key + '_cuda_sigmoid']['mean'] == on_cuda[key]
    assert 0 <= row['seeds'][0]['zero_gradient_cuda_sigmoid'] <= 100
    assert 'black-box FGSM, CUDA sigmoid' in (written.parent / 'tables.md').read_text()
    assert row['seeds'][0]['weights_sha256'] == _entry(store, 'S')['sha256']
    assert row['over_seeds']['clean'] == {'n': 1, 'mean': row['clean'], 'std': None,
                                          'min': row['clean'], 'max': row['clean']}


def test_from_weights_names_what_is_missing(store, tmp_path, monkeypatch, capsys,
                                            mnist_folder):
    argv = ['--from-weights', '--networks', 'S', 'RS', '--seeds', '1', '3', '--epochs', '1',
            '--train-subset', '200', '--mnist-dir', mnist_folder]
    with pytest.raises(UserError, match='no committed weights or finished run for S seed 3, '
                                        'RS seed 1, RS seed 3'):
        _run_evaluate(monkeypatch, capsys, store, tmp_path / 'runs', *argv)


def test_a_store_without_its_manifest_is_named(store, tmp_path, monkeypatch, capsys,
                                               mnist_folder):
    copy = tmp_path / 'store'
    entry = _entry(store, 'S')
    (copy / os.path.dirname(entry['file'])).mkdir(parents=True)
    (copy / entry['file']).write_bytes(open(os.path.join(store, entry['file']), 'rb').read())
    argv = ['--from-weights', '--networks', 'S', '--seeds', '1', '--epochs', '1',
            '--train-subset', '200', '--mnist-dir', mnist_folder]
    with pytest.raises(UserError, match='store/manifest.json is missing, so the weights in that '
                                        'folder cannot be checked'):
        _run_evaluate(monkeypatch, capsys, str(copy), tmp_path / 'runs', *argv)


def test_tables_of_other_options_go_to_other_folders(store, tmp_path, monkeypatch, capsys,
                                                     mnist_folder):
    common = ['--from-weights', '--networks', 'S', '--seeds', '1', '--epochs', '1',
              '--train-subset', '200', '--mnist-dir', mnist_folder, '--no-progress']
    runs = tmp_path / 'runs'
    for more in (['--test-subset', '200'], ['--test-subset', '300'],
                 ['--test-subset', '200', '--bn-mode', 'running']):
        out = _run_evaluate(monkeypatch, capsys, store, runs, *(common + more))
        assert 'S seed 1: done in' not in out   # --no-progress
    assert sorted(os.listdir(str(runs / 'friendly' / 'tables'))) == [
        'thesis-e1-n200-S-seeds1-test200', 'thesis-e1-n200-S-seeds1-test200-running',
        'thesis-e1-n200-S-seeds1-test300']


def test_evaluate_output_that_cannot_be_written_is_one_line_before_any_work():
    done = subprocess.run([sys.executable, 'friendly/evaluate.py', '--results', 'README.md'],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ''
    assert done.stderr == 'error: README.md is a file; expected a folder\n'


def test_seed_summary_and_aim():
    s = tables.summary([95.0, 96.0, 97.0])
    assert s == {'n': 3, 'mean': 96.0, 'std': 1.0, 'min': 95.0, 'max': 97.0}
    over = {'clean': tables.summary([95.0, 96.0]), 'white_box_fgsm': tables.summary([40.0]),
            'black_box_fgsm': tables.summary([51.0])}
    # thesis S: 95.86 clean, 46.16 white-box, 45.28 black-box
    assert tables.within_aim('S', over) == {'clean': True, 'white_box_fgsm': False,
                                            'black_box_fgsm': False}


def test_collapse_verdict_on_constructed_logs():
    healthy = [{'epoch': e, 'main/accuracy': a, 'main/elastic_scale_1': 1.0 + e / 10}
               for e, a in enumerate([0.8, 0.9, 0.93, 0.92], 1)]
    collapsed = [{'epoch': e, 'main/accuracy': a, 'main/elastic_scale_1': s}
                 for e, (a, s) in enumerate([(0.9, 1.5), (0.93, 3.0), (0.69, 4.8)], 1)]
    assert not tables.collapse(healthy)['collapsed']
    verdict = tables.collapse(collapsed)
    assert verdict['collapsed'] and verdict['peak_epoch'] == 2 and verdict['largest_scale'] == 4.8


def test_quick_path_leaves_every_tracked_file_alone(tmp_path, mnist_folder):
    """The README's demo writes under the runs folder only; results/ is written on request."""
    def status():
        return subprocess.run(['git', 'status', '--porcelain'], cwd=ROOT, capture_output=True,
                              text=True).stdout
    if subprocess.run(['git', 'rev-parse'], cwd=ROOT, capture_output=True).returncode:
        pytest.skip('not a git checkout')
    before = status()
    env = dict(os.environ, LENSES_RUNS=str(tmp_path), FRIENDLY_MNIST_DIR=mnist_folder)
    done = subprocess.run([sys.executable, os.path.join(ROOT, 'friendly', 'evaluate.py'),
                           '--quick', '--networks', 'S', '--epochs', '1', '--train-subset', '300',
                           '--test-subset', '200'], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert 'QUICK' in done.stdout
    assert (tmp_path / 'friendly' / 'tables' / 'quick-e1-n300-S-test200' / 'tables.md').exists()
    assert status() == before


def test_only_available_leaves_out_untrained_seeds_and_says_so(store, tmp_path, monkeypatch,
                                                              capsys, mnist_folder):
    common = ['--epochs', '1', '--train-subset', '200', '--test-subset', '200', '--mnist-dir',
              mnist_folder, '--only-available']
    out = _run_evaluate(monkeypatch, capsys, store, tmp_path / 'runs', '--networks', 'S',
                        '--seeds', '1', '3', *common)
    assert '**Not yet trained, so left out:** S seed 3.' in out and 'at once' not in out
    table = json.loads((tmp_path / 'runs' / 'friendly' / 'tables' /
                        'thesis-e1-n200-S-seeds1+3-test200' / 'tables.json').read_text())
    assert [r['seed'] for r in table['networks']['S']['seeds']] == [1]
    with pytest.raises(UserError, match='every default seed are needed.*S seed 3'):
        _run_evaluate(monkeypatch, capsys, store, tmp_path / 'runs', '--networks', 'S',
                      '--seeds', '3', '1', *common)


def test_a_record_finds_the_weights_it_keeps_beside_the_repository_store(store, tmp_path,
                                                                         monkeypatch, capsys,
                                                                         mnist_folder):
    # S seed 3 lives only in the record's own store; S seed 1 and the source in the repository's
    record = tmp_path / 'record'
    settings = training.settings_for('S', epochs=1, seed=3, train_subset=200)
    run = str(tmp_path / 'S-seed3')
    weights.export(run, training.train(settings, run, progress=False, mnist_dir=mnist_folder),
                   str(record / 'weights' / 'friendly'))
    out = _run_evaluate(monkeypatch, capsys, store, tmp_path / 'runs', '--networks', 'S',
                        '--seeds', '1', '3', '--epochs', '1', '--train-subset', '200',
                        '--test-subset', '200', '--mnist-dir', mnist_folder, '--only-available',
                        '--results', str(record))
    assert 'left out' not in out and 'at once' not in out
    seeds = json.loads((record / 'tables.json').read_text())['networks']['S']['seeds']
    assert [r['seed'] for r in seeds] == [1, 3]
    assert seeds[1]['weights_sha256'] == _entry(str(record / 'weights' / 'friendly'),
                                                'S')['sha256']


def test_evaluate_names_the_folder_to_remove_when_no_snapshot_can_resume(tmp_path, mnist_folder,
                                                                         monkeypatch):
    # evaluate.py trains missing networks itself and has no --force: its advice is the folder
    monkeypatch.setenv('LENSES_RUNS', str(tmp_path))
    settings = training.settings_for('S', epochs=1, train_subset=200)
    folder = weights.run_folder(settings)
    os.makedirs(folder)
    with open(os.path.join(folder, 'snapshot'), 'wb') as f:
        f.write(b'PK\x03\x04 not a whole archive')
    _, error = tables._train_logged((settings, '@numpy', mnist_folder))
    assert error == '%s holds an interrupted run with other settings; remove %s to train it ' \
        'from the start' % (folder, folder)
    training.write_json(os.path.join(folder, 'settings.json'),
                        {'settings': settings, 'finished': False})
    _, error = tables._train_logged((settings, '@numpy', mnist_folder))
    assert error.startswith('cannot resume: snapshot %s' % os.path.join(folder, 'snapshot'))
    assert error.endswith('is damaged; remove %s to train it from the start' % folder)
    assert '--force' not in error


def test_another_record_is_shown_beside_with_the_move_of_its_means(store, tmp_path, monkeypatch,
                                                                    capsys, mnist_folder):
    common = ['--from-weights', '--networks', 'S', '--seeds', '1', '--epochs', '1',
              '--train-subset', '200', '--mnist-dir', mnist_folder, '--no-progress']
    runs = tmp_path / 'runs'
    _run_evaluate(monkeypatch, capsys, store, runs, *(common + ['--test-subset', '200']))
    first = runs / 'friendly' / 'tables' / 'thesis-e1-n200-S-seeds1-test200' / 'tables.json'
    other = json.loads(first.read_text())
    # the other record: the same network on 200 images; these tables: on 400
    out = _run_evaluate(monkeypatch, capsys, store, runs,
                        *(common + ['--test-subset', '400', '--beside', str(first)]))
    here = json.loads((runs / 'friendly' / 'tables' / 'thesis-e1-n200-S-seeds1-test400-beside' /
                       'tables.json').read_text())
    assert here['beside']['networks']['S']['seeds'] == [1]
    assert 'Made by `%s`' % other['provenance']['command'] in out
    for key, title in tables.ROWS:
        theirs, ours = other['networks']['S'][key], here['networks']['S'][key]
        assert '| %s | %.2f (1 seed) (%+.2f) |' % (title, theirs, theirs - ours) in out
    with pytest.raises(UserError, match='--beside .*README.md: not a tables.json'):
        _run_evaluate(monkeypatch, capsys, store, runs,
                      *(common + ['--beside', os.path.join(ROOT, 'README.md')]))
