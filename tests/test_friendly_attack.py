"""FGSM and PGD on a small trained S network; train.py resume; CLI errors; evaluate.py e2e."""
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from friendly import attack
from friendly.train import load_model, settings_for, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPSILON = 77


@pytest.fixture(scope='module')
def trained_s(tmp_path_factory, mnist_folder):
    """S trained for 4 epochs on 6,000 images."""
    out = str(tmp_path_factory.mktemp('S'))
    settings = settings_for("S", epochs=4, train_subset=6000)
    train(settings, out, progress=False, mnist_dir=mnist_folder)
    net, _ = load_model(out)
    x, t = attack.test_set(400, mnist_folder)
    return net, x, t, out


def test_fgsm_stays_in_the_integer_box_and_hurts(trained_s):
    net, x, t, _ = trained_s
    adv = attack.fgsm(net, x, t, EPSILON)
    assert np.abs(adv - x).max() <= EPSILON
    assert np.all(adv == np.round(adv)) and adv.min() >= 0 and adv.max() <= 255
    assert np.abs(adv - x).max() == EPSILON  # it moves
    clean, attacked = attack.accuracy(net, x, t, 'batch'), attack.accuracy(net, adv, t, 'batch')
    assert clean > 0.4 * len(x) and attacked < 0.85 * clean


def test_pgd_at_least_as_strong_as_fgsm(trained_s):
    net, x, t, _ = trained_s
    x, t = x[:100], t[:100]
    adv = attack.pgd(net, x, t, EPSILON, steps=10, restarts=2, rng=np.random.RandomState(0))
    assert np.abs(adv - x).max() <= EPSILON and np.all(adv == np.round(adv))
    assert adv.min() >= 0 and adv.max() <= 255
    fgsm_correct = attack.accuracy(net, attack.fgsm(net, x, t, EPSILON), t, 'batch')
    assert attack.accuracy(net, adv, t, 'batch') <= fgsm_correct


def test_evaluate_reports_each_attack(trained_s):
    net, x, t, _ = trained_s
    result = attack.evaluate(net, x[:200], t[:200], source=net)
    assert set(result) == {'clean', 'white_box_fgsm', 'black_box_fgsm'}
    assert result['white_box_fgsm'] == result['black_box_fgsm']  # same network both ways
    assert result['white_box_fgsm'] < result['clean']


def run(args, env=None, **kwargs):
    return subprocess.run([sys.executable] + args, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), **kwargs)


@pytest.mark.parametrize('args, message', [
    (['friendly/train.py', 'XYZ'], 'unknown network'),
    (['friendly/train.py', 'S', '--epochs', '0'], '--epochs must be at least 1'),
    (['friendly/attack.py', '/nonexistent/run'], 'holds no finished run'),
    (['friendly/evaluate.py'], 'pass --table'),
    (['friendly/evaluate.py', '--table', '--epochs-for', 'PD=x'], 'bad --epochs-for'),
])
def test_bad_cli_input_is_one_line(args, message):
    result = run(args)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and message in errors[0] and 'Traceback' not in result.stderr


def test_attack_cli_rejects_damaged_model(trained_s, tmp_path):
    _, _, _, out = trained_s
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'settings.json').write_text(open(os.path.join(out, 'settings.json')).read())
    (broken / 'model.npz').write_bytes(b'not a model')
    result = run(['friendly/attack.py', str(broken)])
    assert result.returncode == 2 and 'not a readable model' in result.stderr


def test_interrupted_training_resumes(tmp_path, mnist_folder):
    out = str(tmp_path / 'run')
    args = ['friendly/train.py', 'S', '--epochs', '3', '--train-subset', '1000', '--out', out,
            '--no-progress', '--mnist-dir', mnist_folder]
    proc = subprocess.Popen([sys.executable] + args, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not os.path.exists(os.path.join(out, 'snapshot')) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip('training finished before it could be interrupted')
    assert 'interrupted' in err and not os.path.exists(os.path.join(out, 'model.npz'))
    result = run(args + ['--resume'])
    assert result.returncode == 0, result.stderr
    assert 'resumed' in result.stdout
    record = json.load(open(os.path.join(out, 'settings.json')))
    assert record['finished'] and record['epochs_trained'] == 3
    epochs = [entry['epoch'] for entry in json.load(open(os.path.join(out, 'log')))]
    assert epochs == [1, 2, 3]
    with zipfile.ZipFile(os.path.join(out, 'snapshot')) as snapshot:  # stored, not deflated
        assert all(item.compress_type == zipfile.ZIP_STORED for item in snapshot.infolist())


def test_evaluate_table_quick_end_to_end(tmp_path, mnist_folder):
    results = tmp_path / 'results'
    env = {'FRIENDLY_RUNS': str(tmp_path / 'runs'), 'FRIENDLY_MNIST_DIR': mnist_folder}
    args = ['friendly/evaluate.py', '--table', '--quick', '--train-subset', '60', '--epochs',
            '1', '--test-subset', '40', '--jobs', '2', '--results', str(results)]
    first = run(args, env)
    assert first.returncode == 0, first.stderr
    tables = json.load(open(results / 'tables.json'))
    assert list(tables['networks']) == ['S', 'RS', 'A', 'GMR', 'GMRES', 'PD']
    for entry in tables['networks'].values():
        assert entry['protocol'].startswith('quick') and entry['epochs'] == 1
        for key in ('clean', 'white_box_fgsm', 'black_box_fgsm'):
            assert 0 <= entry[key] <= 100
    assert tables['provenance']['commit'] and tables['provenance']['device']
    assert 'QUICK' in (results / 'tables.md').read_text()
    assert 'Table 3.2 white-box FGSM' in first.stdout
    again = run(args, env)  # finished runs and evaluations are reused
    assert again.returncode == 0 and 'training' not in again.stdout
    assert json.load(open(results / 'tables.json'))['networks'] == tables['networks']
