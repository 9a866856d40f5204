"""Every `python friendly/...` command README.md shows (in any section), run as a user types it.

Each test says which README command it covers (@covers) and how. A command is run exactly as
written (defaults, progress on) in a subprocess, with $LENSES_RUNS pointing at a temporary
folder (so nothing lands in runs/) and $FRIENDLY_MNIST_DIR at the test copy of MNIST. Commands
that take minutes to hours are run exactly as written until their first sign of work (the
progress bar, a progress line, the workers' logs), then stopped with Ctrl-C as a terminal would:
they must end at once, in one line, leaving no process behind; a cheaper variant with the
command's own options (fewer images, epochs or networks) then runs to the end and its outputs
are checked. Commands that write into results/ run in a scratch folder holding what they read.
test_every_readme_command_has_a_test fails when README.md shows a command no test covers.
"""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

import gpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
class Coverage(dict):
    """README command -> the test that runs it; `@coverage(command, ...)` registers a test."""

    def __call__(self, *commands):
        def register(test):
            for command in commands:
                self[command] = test.__name__
            return test
        return register


COVERED = covers = Coverage()


def readme_commands(prefix='python friendly/'):
    """The `python friendly/...` (or other `prefix`) commands of README.md: lines of fenced
    blocks (comments dropped) and inline code spans (which may wrap), whitespace collapsed."""
    with open(os.path.join(ROOT, 'README.md')) as f:
        parts = f.read().split('```')
    found = [line.split(' #')[0] for block in parts[1::2] for line in block.splitlines()]
    found += [span for prose in parts[0::2] for span in re.findall(r'`([^`]+)`', prose)]
    found = (' '.join(text.split()) for text in found)
    return sorted({text for text in found if text.startswith(prefix)})


@pytest.fixture
def env(tmp_path, mnist_folder):
    return dict(os.environ, LENSES_RUNS=str(tmp_path / 'runs'), FRIENDLY_MNIST_DIR=mnist_folder,
                PYTHONUNBUFFERED='1')


def argv(command, *more):
    words = shlex.split(command) + list(more)
    assert words[0] == 'python'
    return [sys.executable] + words[1:]


def run(command, env, *more, cwd=ROOT):
    """Run `command` (plus `more` options) to the end; (exit status, stdout, stderr)."""
    done = subprocess.run(argv(command, *more), cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    return done.returncode, done.stdout, done.stderr


def run_until(command, marker, env, ready=lambda: True, cwd=ROOT, timeout=300):
    """Run `command` until a line of its output holds `marker` (and `ready()` holds), then
    Ctrl-C its process group as a terminal would; (exit status, stdout, stderr)."""
    errors = open(os.path.join(env['LENSES_RUNS'] + '.stderr'), 'w+')
    # Ctrl-C reaches the command even when the suite runs where SIGINT is ignored (a shell's
    # background job, nohup): the child starts with SIGINT's default, as in a terminal
    proc = subprocess.Popen(argv(command), cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=errors, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    watchdog = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
    watchdog.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if marker in line:
                break
        assert lines and marker in lines[-1], 'output ended before %r:\n%s' % (marker,
                                                                             ''.join(lines))
        while not ready() and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, 'ended before its work began:\n' + ''.join(lines)
        os.killpg(proc.pid, signal.SIGINT)
        lines.append('<Ctrl-C sent>\n')
        lines.append(proc.stdout.read())
        status = proc.wait(timeout=60)
        assert _group_gone(proc.pid), 'a process of the stopped command is still running'
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    errors.seek(0)
    return status, ''.join(lines), errors.read()


def _group_gone(pgid, wait_s=15):
    for _ in range(int(wait_s / 0.2)):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def assert_interrupted(status, stderr, stdout=''):
    assert status == 130 and 'Traceback' not in stderr, (status, stderr, stdout[-2000:])
    assert stderr.strip().splitlines()[-1].startswith('interrupted: rerun the same command')


def assert_one_line_error(status, stderr, message):
    assert status == 2 and stderr.strip().count('\n') == 0, stderr
    assert stderr.startswith('error: ') and message in stderr, stderr


def test_every_readme_command_has_a_test():
    commands = readme_commands()
    assert 'python friendly/evaluate.py --from-weights' in commands   # the extraction works
    assert [c for c in commands if c not in COVERED] == [], 'README commands without a test'
    assert [c for c in COVERED if c not in commands] == [], 'tests of commands README dropped'


@covers('python friendly/train.py S [--seed 3] [--resume] [--device @cupy:0]')
def test_train(env):
    """`train.py S` exactly, until the progress bar's first update (iteration 100, where it
    once crashed), then Ctrl-C; `S --resume` then says in one line that no epoch ended, so there
    is nothing to resume; `--device @cupy:0` without CuPy or a GPU is one line (on a GPU it
    trains). `--seed 3` and a finished run are tests/test_friendly_training.py's."""
    status, out, err = run_until('python friendly/train.py S', 'iters/sec', env)
    assert_interrupted(status, err, out)
    assert 'this epoch [' in out and '100 iter, 0 epoch / 100 epochs' in out
    assert_one_line_error(*run('python friendly/train.py S --resume', env)[::2],
                          'nothing to resume in')
    if gpu.available():
        status, out, err = run_until('python friendly/train.py S --device @cupy:0', 'iters/sec',
                                   env)
        assert_interrupted(status, err, out)
    else:
        assert_one_line_error(*run('python friendly/train.py S --device @cupy:0', env)[::2],
                              'device @cupy:0')


@covers('python friendly/attack.py results/weights/friendly/thesis/RS-seed1.npz --source '
        'results/weights/friendly/thesis/source-seed2.npz')
def test_attack(env):
    """The README's attack exactly: RS seed 1 and the source from the committed weights, all
    10,000 test images (seconds)."""
    status, out, err = run(COMMAND_OF['test_attack'], env)
    assert status == 0, err
    assert out.startswith('RS (results/weights/friendly/thesis/RS-seed1.npz): {"clean": ')
    assert '"white_box_fgsm"' in out and '"black_box_fgsm"' in out


@covers('python friendly/evaluate.py --from-weights', 'python friendly/evaluate.py --jobs 2',
        'python friendly/evaluate.py --from-weights --test-subset 1000')
def test_evaluate_from_the_committed_weights(env, tmp_path):
    """`--from-weights`, `--jobs 2` (which finds all 16 networks committed, so trains none) and
    CI's `--from-weights --test-subset 1000` exactly, each until its first network is scored
    (16 take minutes), then Ctrl-C; then `--from-weights` on S seed 1 and 200 test images to
    the end, tables written under $LENSES_RUNS."""
    for command, images in (('python friendly/evaluate.py --from-weights', 10000),
                            ('python friendly/evaluate.py --jobs 2', 10000),
                            ('python friendly/evaluate.py --from-weights --test-subset 1000',
                             1000)):
        status, out, err = run_until(command, 'S seed 1: done in', env)
        assert_interrupted(status, err, out)
        assert ('[1/15] S seed 1: clean and fgsm, white- and black-box, on %d images' % images
                in out and 'training ' not in out)
    status, out, err = run('python friendly/evaluate.py --from-weights', env, '--networks', 'S',
                           '--seeds', '1', '--test-subset', '200')
    assert status == 0, err
    assert (tmp_path / 'runs' / 'friendly' / 'tables' / 'thesis-S-seeds1-test200' /
            'tables.md').exists()


@covers('python friendly/evaluate.py --quick --jobs 2')
def test_evaluate_quick(env, tmp_path):
    """`--quick --jobs 2` exactly until both workers train (their train.log), then Ctrl-C: the
    workers stop with it; then the same with `--networks S --epochs 1 --train-subset 300
    --test-subset 200` to the end: the source and S trained two at once, the QUICK table."""
    quick = tmp_path / 'runs' / 'friendly' / 'quick'

    def both_train():
        return len(list(quick.glob('*/train.log'))) == 2
    status, out, err = run_until('python friendly/evaluate.py --quick --jobs 2',
                                 'training 6 networks, 2 at once', env, both_train)
    assert_interrupted(status, err, out)
    status, out, err = run('python friendly/evaluate.py --quick --jobs 2', env, '--networks', 'S',
                           '--epochs', '1', '--train-subset', '300', '--test-subset', '200')
    assert status == 0, err
    assert 'training 2 networks, 2 at once' in out and 'finished S seed 1 (' in out
    assert 'QUICK' in out
    tables = tmp_path / 'runs' / 'friendly' / 'tables' / 'quick-e1-n300-S-test200'
    assert (tables / 'tables.md').exists()


@covers('python friendly/evaluate.py --jobs 2 --results results --recorded '
        'results/pd-h100-e20/tables.json:PD --beside results/tables-cuda/tables.json')
def test_evaluate_record(env, tmp_path):
    """The record's command, in a scratch folder holding the recorded PD column and the
    CUDA-arithmetic table (so `results` is not the repository's), with `--networks S --seeds 1
    --test-subset 200` (the whole record is --from-weights' work, above): the tables with the
    recorded PD column and the CUDA-arithmetic table beside."""
    scratch = tmp_path / 'scratch'
    for record in ('pd-h100-e20', 'tables-cuda'):
        (scratch / 'results' / record).mkdir(parents=True)
        shutil.copy(os.path.join(ROOT, 'results', record, 'tables.json'),
                    scratch / 'results' / record)
    os.symlink(os.path.join(ROOT, 'friendly'), scratch / 'friendly')
    status, out, err = run(COMMAND_OF['test_evaluate_record'], env, '--networks', 'S',
                           '--seeds', '1', '--test-subset', '200', cwd=str(scratch))
    assert status == 0, err
    text = (scratch / 'results' / 'tables.md').read_text()
    assert '**PD** is a recorded measurement' in text and '| | S | PD |' in text
    assert '## Beside: the networks of `results/tables-cuda/tables.json`' in text
    assert '| protocol | thesis-cuda | — |' in text


@covers('python friendly/evaluate.py --arithmetic cuda --from-weights --results '
        'results/tables-cuda')
def test_evaluate_cuda_record(env, tmp_path):
    """The CUDA-arithmetic record's command, in a scratch folder holding a copy of its weights
    store, with `--networks S --seeds 1 --test-subset 200`: the networks come from that store
    (checksums first), nothing is trained, and the tables say the arithmetic."""
    scratch = tmp_path / 'scratch'
    store = os.path.join('results', 'tables-cuda', 'weights', 'friendly')
    shutil.copytree(os.path.join(ROOT, store), scratch / store)
    os.symlink(os.path.join(ROOT, 'friendly'), scratch / 'friendly')
    status, out, err = run(COMMAND_OF['test_evaluate_cuda_record'], env, '--networks', 'S',
                           '--seeds', '1', '--test-subset', '200', cwd=str(scratch))
    assert status == 0, err
    assert 'at once' not in out      # nothing trained
    text = (scratch / 'results' / 'tables-cuda' / 'tables.md').read_text()
    assert '**Protocol: thesis-cuda.**' in text and "as Chainer's CUDA kernel computes it" in text


@covers('python friendly/benchmarks/bench.py')
def test_bench(env):
    """bench.py with `--iterations 200` (the default 2,000 iterations take tens of seconds)."""
    status, out, err = run('python friendly/benchmarks/bench.py', env, '--iterations', '200')
    assert status == 0, err
    assert 'ms' in out
    assert re.search(r'CUDA sigmoid arithmetic: .* ratio [\d.]+ \(target <= 1.5\)', out), out


@covers('python friendly/train.py GMRES --seed 5 --arithmetic cuda')
def test_train_in_the_cuda_arithmetic(env):
    """Exactly, until the progress bar's first update, then Ctrl-C: its run folder is the
    protocol's -cuda sibling, and its settings say so."""
    status, out, err = run_until('python friendly/train.py GMRES --seed 5 --arithmetic cuda',
                                 'iters/sec', env)
    assert_interrupted(status, err, out)
    assert '"protocol": "thesis-cuda"' in out and '"arithmetic": "cuda"' in out
    assert os.path.isdir(os.path.join(env['LENSES_RUNS'], 'friendly', 'thesis-cuda',
                                      'GMRES-seed5'))


@covers('python friendly/arithmetic_split.py --seeds 1 3 4 5 6 --device-store '
        'results/gmres-seeds/weights/friendly --cuda-store results/gmres-seeds-cuda/weights/'
        'friendly results/tables-cuda/weights/friendly --out results/gmres-seeds-cuda')
def test_arithmetic_split(env, tmp_path):
    """Exactly, in a scratch copy of the code and the stores: it re-makes the record."""
    scratch = tmp_path / 'checkout'
    for part in ('friendly', 'runkit', os.path.join('results', 'weights', 'friendly'),
                 os.path.join('results', 'gmres-seeds'),
                 os.path.join('results', 'gmres-seeds-cuda'),
                 os.path.join('results', 'tables-cuda', 'weights', 'friendly')):
        shutil.copytree(os.path.join(ROOT, part), scratch / part,
                        ignore=shutil.ignore_patterns('__pycache__'))
    os.remove(scratch / 'results' / 'gmres-seeds-cuda' / 'arithmetic_split.md')
    status, out, err = run(
        'python friendly/arithmetic_split.py --seeds 1 3 4 5 6 --device-store '
        'results/gmres-seeds/weights/friendly --cuda-store results/gmres-seeds-cuda/weights/'
        'friendly results/tables-cuda/weights/friendly --out results/gmres-seeds-cuda',
        dict(env, PYTHONPATH=str(scratch)),
        cwd=str(scratch))
    assert status == 0, err
    made = (scratch / 'results' / 'gmres-seeds-cuda' / 'arithmetic_split.md').read_text()
    committed = open(os.path.join(ROOT, 'results', 'gmres-seeds-cuda',
                                  'arithmetic_split.md')).read()
    # the same tables as the committed record (only the provenance line differs)
    assert made.split('\n| seed |')[1] == committed.split('\n| seed |')[1]


@covers('python friendly/benchmarks/bench_pd.py')
def test_bench_pd(env, tmp_path):
    """bench_pd.py with `--batches 2 --repeats 1 --no-train` (the default batches 20 and 256
    take minutes): the report under $LENSES_RUNS."""
    status, out, err = run('python friendly/benchmarks/bench_pd.py', env, '--batches', '2',
                           '--repeats', '1', '--no-train')
    assert status == 0, err
    assert (tmp_path / 'runs' / 'friendly' / 'bench' / 'bench_pd.md').exists()


@covers('python friendly/benchmarks/bench_pd.py --device @cupy:0 '
        '--results results/bench_pd_gpu.md')
def test_bench_pd_gpu(env, tmp_path):
    """The GPU record's command, in a scratch folder (so `results` is not the repository's),
    with `--batches 2 --repeats 1 --no-train`; without a GPU it is one line."""
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    os.symlink(os.path.join(ROOT, 'friendly'), scratch / 'friendly')
    more = ('--batches', '2', '--repeats', '1', '--no-train')
    status, _, err = run(COMMAND_OF['test_bench_pd_gpu'], env, *more, cwd=str(scratch))
    if not gpu.available():
        assert_one_line_error(status, err, 'device @cupy:0')
        return
    assert status == 0, err
    assert (scratch / 'results' / 'bench_pd_gpu.md').exists()


@covers('python friendly/benchmarks/bench_pd_ptx.py')
def test_bench_pd_ptx(env, tmp_path):
    """bench_pd_ptx.py exactly (it needs nvcc, not a GPU): the report under $LENSES_RUNS."""
    if shutil.which('nvcc') is None:
        pytest.skip('needs nvcc')
    status, _, err = run('python friendly/benchmarks/bench_pd_ptx.py', env)
    assert status == 0, err
    assert (tmp_path / 'runs' / 'friendly' / 'bench' / 'bench_pd_ptx.md').exists()


ROBUSTNESS_S = ('python friendly/robustness_eval.py --networks S --bn-modes batch '
                '--test-subset 1000 --subset 1000')
ROBUSTNESS_JOBS = 'python friendly/robustness_eval.py --jobs 2'
ROBUSTNESS_GMRES_SEED = ('python friendly/robustness_eval.py --networks GMRES --test-subset 1000 '
                         '--queries 5000 --epsilons 0 10 26 255 --seed 1')


@covers('python friendly/robustness_eval.py', ROBUSTNESS_S, ROBUSTNESS_GMRES_SEED, ROBUSTNESS_JOBS)
def test_robustness_eval(env, tmp_path):
    """robustness_eval.py, README's S and GMRES measurements exactly, and with --jobs 2, each
    until it attacks its first network (tens of minutes each; with --jobs 2, in a worker), then
    Ctrl-C, which stops the workers too; then on S with 200 images, 4 APGD steps, 30 queries:
    the report under $LENSES_RUNS."""
    for command, first in (('python friendly/robustness_eval.py',
                             "S, Batch Renormalization 'batch', 10000 images"),
                            (ROBUSTNESS_S, "S, Batch Renormalization 'batch', 1000 images"),
                            (ROBUSTNESS_GMRES_SEED,
                             "GMRES, Batch Renormalization 'batch', 1000 images"),
                            (ROBUSTNESS_JOBS, "Batch Renormalization 'batch', 10000 images")):
        status, out, err = run_until(command, first, env)
        assert_interrupted(status, err, out)
    status, out, err = run('python friendly/robustness_eval.py', env, '--networks', 'S',
                           '--test-subset', '200', '--subset', '200', '--steps', '4',
                           '--queries', '30', '--epsilons', '0', '77')
    assert status == 0, err
    assert (tmp_path / 'runs' / 'friendly' / 'robustness' / 'robustness.md').exists()


@covers('python friendly/robustness_eval.py --jobs 2 --convergence --results '
        'results/robustness')
def test_robustness_record(env, tmp_path):
    """The record's command, in a scratch folder (so `results` is not the repository's), with
    `--networks S RS --test-subset 200 --subset 200 --steps 4 --queries 30 --epsilons 0 77`
    (the whole record takes hours): a complete record of both, made by two workers, with the
    convergence check's verdicts."""
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    os.symlink(os.path.join(ROOT, 'friendly'), scratch / 'friendly')
    status, out, err = run(COMMAND_OF['test_robustness_record'], env, '--networks', 'S', 'RS',
                           '--test-subset', '200', '--subset', '200', '--steps', '4',
                           '--queries', '30', '--epsilons', '0', '77', cwd=str(scratch))
    assert status == 0, err
    record = json.loads((scratch / 'results' / 'robustness' / 'robustness.json').read_text())
    assert list(record['networks']) == ['S', 'RS'] and record['pending'] == []
    assert record['settings']['budgets']['queries'] == 30 and record['settings']['convergence']
    for network in record['networks'].values():
        for result in network['modes'].values():
            assert result['convergence']['by_epsilon']
            assert result['checks']['converged']['ok'] is not None


@covers('python friendly/benchmarks/bench_attacks.py')
def test_bench_attacks(env, tmp_path):
    """bench_attacks.py exactly until its first Square timing (the evaluation it then times
    takes minutes), then Ctrl-C; then with `--queries 30 --skip-evaluation` to the end: the
    report under $LENSES_RUNS."""
    status, out, err = run_until('python friendly/benchmarks/bench_attacks.py', '| 77 |', env)
    assert_interrupted(status, err, out)
    status, out, err = run('python friendly/benchmarks/bench_attacks.py', env, '--queries', '30',
                           '--skip-evaluation')
    assert status == 0, err
    assert (tmp_path / 'runs' / 'friendly' / 'bench' / 'bench_attacks.md').exists()


TEMPERATURE_SWEEP = 'python friendly/temperature_sweep.py --networks S --epsilons 26'


@covers(TEMPERATURE_SWEEP)
def test_temperature_sweep(env, tmp_path):
    """README's sweep exactly until it starts on S (minutes), then Ctrl-C; then on 20 images,
    two temperatures and 3 steps to the end; a temperature of 0 is one line."""
    status, out, err = run_until(TEMPERATURE_SWEEP, 'S eps 26: T 1, 10, 30, 100, 300 on 500',
                                 env)
    assert_interrupted(status, err, out)
    status, out, err = run(TEMPERATURE_SWEEP, env, '--images', '20', '--temperatures', '1',
                           '30', '--steps', '3')
    assert status == 0, err
    report = tmp_path / 'runs' / 'friendly' / 'temperature_sweep' / 'temperature_sweep.md'
    assert '| 30 |' in report.read_text() and 'S eps 26 T 30: APGD' in out
    status, _, err = run(TEMPERATURE_SWEEP, env, '--temperatures', '0')
    assert_one_line_error(status, err, 'temperatures must be positive')


COMMAND_OF = {test: command for command, test in COVERED.items()}
