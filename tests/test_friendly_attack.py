"""The thesis's FGSM and the attack script on small trained networks: FGSM's box, APGD at least
as strong, black-box from a distinct source, friendly/attack.py on run folders and on committed
weights files, one-line CLI errors."""
import json
import os
import subprocess
import sys

import chainer
import numpy as np
import pytest

from friendly import attacks, mnist, robustness, training, weights
from thesis_reference import fgsm_accuracy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPSILON = 77
CPU = chainer.get_device('@numpy')


@pytest.fixture(scope='module')
def trained(tmp_path_factory, mnist_folder):
    """S (4 epochs on 6,000 images) and a source S of another seed (2 epochs on 2,000),
    as run folders and exported to a weights store."""
    store = str(tmp_path_factory.mktemp('store'))
    nets, folders = {}, {}
    for name, epochs, subset in (('S', 4, 6000), ('source', 2, 2000)):
        out = str(tmp_path_factory.mktemp(name))
        settings = training.settings_for(name, epochs=epochs, train_subset=subset)
        record = training.train(settings, out, progress=False, mnist_dir=mnist_folder)
        weights.export(out, record, store=store)
        nets[name], folders[name] = weights.load_run(out)[0], out
        folders[name + '_file'] = os.path.join(store, weights.file_name(settings))
    x, t = mnist.test_set(400, mnist_folder)
    return nets, folders, x, t


def test_fgsm_stays_in_the_integer_box_and_hurts(trained):
    nets, _, x, t = trained
    net = nets['S']
    adv = attacks.fgsm(net, x, t, EPSILON)
    assert np.abs(adv - x).max() <= EPSILON
    assert np.all(adv == np.round(adv)) and adv.min() >= 0 and adv.max() <= 255
    assert np.abs(adv - x).max() == EPSILON  # it moves
    clean, attacked = robustness.score(net, x, t, 'batch'), robustness.score(net, adv, t, 'batch')
    assert clean.sum() > 0.4 * len(x) and attacked.sum() < 0.85 * clean.sum()


def test_fgsm_is_one_signed_step_of_the_squared_distance(trained):
    nets, _, x, t = trained
    x, t = x[:200], t[:200]
    gradient = attacks.loss_gradient(nets['S'], x, t, 'batch')
    expected = np.clip(x + EPSILON * np.sign(gradient), 0, 255)
    assert np.array_equal(attacks.fgsm(nets['S'], x, t, EPSILON), expected)


def test_apgd_at_least_as_strong_as_fgsm(trained):
    nets, _, x, t = trained
    net, x, t = nets['S'], x[:200], t[:200]
    adv = attacks.apgd(net, x, t, EPSILON, steps=20, rng=np.random.RandomState(0))
    fgsm_correct = robustness.score(net, attacks.fgsm(net, x, t, EPSILON), t, 'batch').sum()
    assert robustness.score(net, adv, t, 'batch').sum() <= fgsm_correct


def test_original_pgd_stays_in_the_integer_ball(trained):
    nets, _, x, t = trained
    x, t = x[:100], t[:100]
    adv = attacks.pgd(nets['S'], x, t, EPSILON, steps=5, restarts=2,
                     rng=np.random.RandomState(0))
    assert np.abs(adv - x).max() <= EPSILON and np.all(adv == np.round(adv))
    assert adv.min() >= 0 and adv.max() <= 255


def test_the_evaluator_measures_table_3_2_and_black_box_comes_from_the_source(trained):
    nets, _, x, t = trained
    victim, source = nets['S'], nets['source']
    evaluator = robustness.Evaluator(source, CPU, {}, chunk=200)
    result = evaluator.accuracy(victim, 'S', x, t, EPSILON, 'batch', robustness.THESIS_COLUMNS)
    assert result == fgsm_accuracy(victim, source, x, t)
    assert list(result) == ['clean', 'white_box_fgsm', 'black_box_fgsm']
    assert result['white_box_fgsm'] != result['black_box_fgsm']
    assert result['white_box_fgsm'] < result['clean']


def test_attack_columns_are_white_and_black_box_with_the_attacks_defaults():
    columns = robustness.attack_columns(['fgsm', 'apgd', 'transfer'], black_box=True)
    assert list(columns) == ['white_box_fgsm', 'black_box_fgsm', 'white_box_apgd',
                             'black_box_apgd', 'transfer']
    assert columns['black_box_apgd'].on == columns['transfer'].on == 'source'
    assert columns['transfer'].attack == 'apgd' and columns['transfer'].budget == ()
    assert [c.kind for c in columns.values()] == ['single-step gradient', 'transfer',
                                                  'iterative gradient', 'transfer', 'transfer']
    assert list(robustness.attack_columns(['square'], black_box=False)) == ['white_box_square']


def test_every_attack_is_in_the_registry():
    assert {'fgsm', 'pgd', 'apgd', 'apgd_ce', 'apgd_t', 'square'} <= set(attacks.ATTACKS)


def run(args, env=None, **kwargs):
    return subprocess.run([sys.executable] + args, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), **kwargs)


def test_attack_cli_on_committed_weights_and_run_folders(trained, mnist_folder, tmp_path):
    nets, folders, x, t = trained
    out = tmp_path / 'result.json'
    by_file = run(['friendly/attack.py', folders['S_file'], '--source', folders['source_file'],
                   '--test-subset', '200', '--mnist-dir', mnist_folder, '--json', str(out)])
    assert by_file.returncode == 0, by_file.stderr
    expected = fgsm_accuracy(nets['S'], nets['source'], x[:200], t[:200])
    assert json.loads(out.read_text())['accuracy_percent'] == expected
    by_folder = run(['friendly/attack.py', folders['S'], '--source', folders['source'],
                     '--test-subset', '200', '--mnist-dir', mnist_folder])
    assert by_folder.returncode == 0 and json.dumps(expected) in by_folder.stdout
    transfer = run(['friendly/attack.py', folders['S'], '--source', folders['source'],
                    '--attack', 'transfer', '--test-subset', '200', '--mnist-dir', mnist_folder,
                    '--json', str(out)])
    assert transfer.returncode == 0, transfer.stderr
    result = json.loads(out.read_text())['accuracy_percent']
    assert list(result) == ['clean', 'transfer'] and result['transfer'] < result['clean']


@pytest.mark.parametrize('args, message', [
    (['friendly/attack.py', '/nonexistent/run'], 'holds no finished run'),
    (['friendly/attack.py', '/nonexistent/run', '--epsilon', '300'], '0..255'),
    (['friendly/attack.py', '/nonexistent/run', '--attack', 'transfer'], 'needs --source'),
    (['friendly/attack.py', '/nonexistent/run', '--attack', 'xyz'], 'invalid choice'),
    (['friendly/attack.py', '/nonexistent/run', '--json', 'tests'],
     'tests is a folder; expected a file name'),
    (['friendly/attack.py', '/nonexistent/run', '--json', 'README.md/a.json'],
     'README.md is a file; expected a folder'),
])
def test_bad_cli_input_is_one_line(args, message):
    result = run(args)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and message in errors[0] and 'Traceback' not in result.stderr


def test_attack_cli_rejects_damaged_model_and_unlisted_file(trained, tmp_path):
    _, folders, _, _ = trained
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'settings.json').write_text(open(os.path.join(folders['S'],
                                                            'settings.json')).read())
    (broken / 'model.npz').write_bytes(b'not a model')
    result = run(['friendly/attack.py', str(broken)])
    assert result.returncode == 2 and 'not a readable model' in result.stderr
    loose = tmp_path / 'loose.npz'
    loose.write_bytes(open(folders['S_file'], 'rb').read())
    result = run(['friendly/attack.py', str(loose)])
    assert result.returncode == 2 and 'not listed in a weights manifest' in result.stderr
