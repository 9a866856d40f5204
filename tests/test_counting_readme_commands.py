"""Every `python counting/...` command README.md shows, run as a user types it.

As for friendly (tests/test_friendly_readme_commands.py, whose helpers these tests use): each
command runs exactly as written in a subprocess with $LENSES_RUNS in a temporary folder; a long
command runs until its first sign of work, then gets Ctrl-C and must end in one line; a cheaper
variant with the command's own options runs to the end. Commands that write into results/ run
in a scratch copy of the checkout. test_every_counting_command_has_a_test fails when README.md
shows a counting command no test covers.
"""
import os
import shutil

import pytest

import gpu
from test_friendly_readme_commands import Coverage, assert_interrupted, assert_one_line_error
from test_friendly_readme_commands import readme_commands as readme_commands_with_prefix
from test_friendly_readme_commands import run, run_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THESIS_FIGURES = os.path.join(os.path.dirname(ROOT), 'shared', 'thesis', 'figures')
COVERED = covers = Coverage()


def readme_commands():
    return readme_commands_with_prefix('python counting/')


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, LENSES_RUNS=str(tmp_path / 'runs'), PYTHONUNBUFFERED='1',
                OMP_NUM_THREADS='1')


def test_every_counting_command_has_a_test():
    commands = readme_commands()
    assert 'python counting/train.py' in commands
    assert [c for c in commands if c not in COVERED] == [], 'README commands without a test'
    assert [c for c in COVERED if c not in commands] == [], 'tests of commands README dropped'


@covers('python counting/train.py')
def test_train(env):
    """Exactly, until the progress bar's first update, then Ctrl-C (it also generates
    data/counting/small once, as a user's first run does); the cheaper variant is
    tests/test_counting_cli.py's pipeline."""
    status, out, err = run_until('python counting/train.py', 'iters/sec', env, timeout=400)
    assert_interrupted(status, err, out)
    assert 'training convolutional_small/sigmoid' in out and 'this epoch [' in out


@covers('python counting/train.py --preset thesis --device @cupy:0',
        'python counting/bench.py --device @cupy:0')
@pytest.mark.skipif(gpu.available(), reason='a GPU is usable here: the thesis run takes hours')
def test_gpu_commands_without_a_gpu_are_one_line(env):
    for command in ('python counting/train.py --preset thesis --device @cupy:0',
                    'python counting/bench.py --device @cupy:0'):
        status, _, err = run(command, env)
        assert_one_line_error(status, err, '@cupy:0')


@covers('python counting/bench.py')
def test_bench(env):
    """Exactly, until its first line (the 1000 px network takes minutes on a CPU), then Ctrl-C;
    then without the thesis size and with few sampler images, to the end."""
    status, out, err = run_until('python counting/bench.py', 'sampler, 1000x1000', env)
    assert_interrupted(status, err, out)
    status, out, err = run('python counting/bench.py', env, '--skip-thesis-size',
                           '--sampler-images', '4')
    assert status == 0, err
    assert 'small (convolutional_small 96x96, batch 20)' in out and 'per localisation step' in out


def scratch_checkout(tmp_path):
    """What make_results.py reads and writes, copied: the code, the committed networks and the
    record (whose thesis measurements it keeps)."""
    scratch = tmp_path / 'checkout'
    for part in ('counting', 'runkit', 'friendly', os.path.join('results', 'counting'),
                 os.path.join('results', 'weights', 'counting')):
        shutil.copytree(os.path.join(ROOT, part), scratch / part,
                        ignore=shutil.ignore_patterns('__pycache__'))
    return scratch


SAMPLE_192 = ('python counting/sample.py data192 3000 12 --image-width 192 --image-height 192 '
              '--scale-bounds 16 28 --limit-scale-resampling --seed 1')
TRAIN_192 = 'python counting/train.py --dataset data192 --epochs 10 --lr 0.01'


@covers(SAMPLE_192, TRAIN_192)
def test_the_twice_as_large_run(env, tmp_path):
    """The 192 px experiment exactly, in a scratch copy (its data192 lands there): the 3,000
    images to the end (seconds), then the training until the progress bar's first update, then
    Ctrl-C."""
    scratch = scratch_checkout(tmp_path)
    env = dict(env, PYTHONPATH=str(scratch))
    status, out, err = run(SAMPLE_192, env, cwd=str(scratch))
    assert status == 0, err
    assert len([n for n in os.listdir(scratch / 'data192') if n.endswith('.png')]) == 3000
    status, out, err = run_until(TRAIN_192, 'iters/sec', env, cwd=str(scratch), timeout=400)
    assert_interrupted(status, err, out)
    assert 'on 2700 images 192x192, 10 epochs, sgd lr 0.01' in out


@covers('python counting/make_results.py --from-weights',
        'python counting/make_results.py --thesis-figures ../shared/thesis/figures')
def test_make_results(env, tmp_path):
    """Both exactly, in a scratch copy, until the first network is measured, then Ctrl-C;
    then `--from-weights` with few images to the end: the record re-made from the committed
    networks without training. The thesis's figure files are read where CI keeps them."""
    scratch = scratch_checkout(tmp_path)
    os.makedirs(os.path.join(ROOT, 'data'), exist_ok=True)
    os.symlink(os.path.join(ROOT, 'data'), scratch / 'data')   # the datasets, made once
    env = dict(env, PYTHONPATH=str(scratch))
    commands = ['python counting/make_results.py --from-weights']
    if os.path.isdir(THESIS_FIGURES):
        os.symlink(os.path.dirname(os.path.dirname(THESIS_FIGURES)), tmp_path / 'shared')
        commands.append('python counting/make_results.py --thesis-figures '
                        '../shared/thesis/figures')
    for command in commands:
        status, out, err = run_until(command, 'measuring small', env, cwd=str(scratch))
        assert_interrupted(status, err, out)
        assert 'training' not in out
    status, out, err = run('python counting/make_results.py --from-weights', env, '--images',
                           '2', '--shortcut-images', '6', cwd=str(scratch))
    assert status == 0, err
    record = scratch / 'results' / 'counting'
    assert (record / 'chapter2.md').exists() and (record / 'fig2_4.png').exists()


@covers('python counting/localise.py')
def test_localise(tmp_path):
    """Exactly as README shows it, in a scratch copy of the checkout, until the first network
    is loaded, then Ctrl-C: one line, nothing written."""
    scratch = scratch_checkout(tmp_path)
    os.makedirs(os.path.join(ROOT, 'data'), exist_ok=True)
    os.symlink(os.path.join(ROOT, 'data'), scratch / 'data')
    before = sorted(os.listdir(scratch / 'results' / 'counting'))
    env = dict(os.environ, LENSES_RUNS=str(tmp_path / 'runs'), PYTHONUNBUFFERED='1',
               OMP_NUM_THREADS='1', PYTHONPATH=str(scratch))
    status, out, err = run_until('python counting/localise.py', 'small:', env,
                                 cwd=str(scratch))
    assert_interrupted(status, err, out)
    assert sorted(os.listdir(scratch / 'results' / 'counting')) == before
