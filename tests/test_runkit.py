"""runkit: one-line errors, devices, atomic writes (also when killed), provenance, and the
resumable shuffle."""
import errno
import json
import importlib.util
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time

import chainer
import numpy as np
import pytest

from runkit import cli, devices, provenance
from runkit.renorm import BatchRenormalization
from runkit.runs import RunFolder
from runkit.training import ShuffleOrder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_parser_errors_are_user_errors():
    parser = cli.Parser(prog='x.py')
    parser.add_argument('--n', type=cli.positive_int)
    with pytest.raises(cli.UserError, match=r'--n: must be a positive integer, got 0 \(see x.py'):
        parser.parse_args(['--n', '0'])
    with pytest.raises(cli.UserError, match='unrecognized arguments: --m'):
        parser.parse_args(['--m'])


@pytest.mark.parametrize('spec, message', [('bogus', "unknown device 'bogus'"),
                                           ('@cupy:x', 'device @cupy:x (is not usable here|needs '
                                                       'CuPy)')])
def test_bad_devices_are_one_line_errors(spec, message):
    with pytest.raises(cli.UserError, match=message) as err:
        devices.get_device(spec)
    assert '\n' not in str(err.value)


def test_scripts_turn_a_bad_device_into_one_line():
    for argv in (['friendly/train.py', 'S'], ['friendly/evaluate.py'],
                 ['counting/train.py'], ['counting/test.py']):
        done = subprocess.run([sys.executable, os.path.join(ROOT, argv[0])] + argv[1:]
                              + ['--device', 'bogus'], capture_output=True, text=True)
        assert done.returncode == 2
        assert done.stderr.strip() == "error: unknown device 'bogus'; use '@numpy' or " \
                                      "'@cupy:<gpu id>'"


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = str(tmp_path / 'a.txt')
    provenance.write_text(path, 'old')

    def fail(tmp):
        with open(tmp, 'w') as f:
            f.write('half')
        raise RuntimeError('disk full')
    with pytest.raises(RuntimeError):
        provenance.atomic_write(path, fail)
    assert open(path).read() == 'old' and os.listdir(str(tmp_path)) == ['a.txt']


def test_a_gpu_device_without_cupy_says_cupy_is_missing(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'cupy' else real(name, *a))
    with pytest.raises(cli.UserError, match=r'device @cupy:0 needs CuPy, which is not installed'):
        devices.get_device('@cupy:0')


def _read_only(*args, **kwargs):
    raise OSError(errno.EROFS, 'Read-only file system')


@pytest.mark.parametrize('where, message', [
    ('folder', r'a.txt is a folder; expected a file name'),
    ('under a file', r'file.txt is a file; expected a folder'),
    ('read-only', r'cannot write in .* \(Read-only file system\)'),
])
def test_write_failures_are_one_line_errors_and_leave_nothing(tmp_path, monkeypatch, where,
                                                              message):
    path = tmp_path / 'a.txt'
    if where == 'folder':
        path.mkdir()
    elif where == 'under a file':
        (tmp_path / 'file.txt').write_text('')
        path = tmp_path / 'file.txt' / 'a.txt'
    else:
        monkeypatch.setattr(tempfile, 'TemporaryFile', _read_only)
    before = sorted(os.listdir(str(tmp_path)))
    with pytest.raises(cli.UserError, match=message) as err:
        provenance.write_text(str(path), 'text')
    assert '\n' not in str(err.value) and sorted(os.listdir(str(tmp_path))) == before


SLOW_WRITE = """
import sys, time
from runkit.cli import run_main
from runkit.provenance import atomic_write

def write(tmp):
    with open(tmp, 'w') as f:
        print('writing', flush=True)
        time.sleep(60)

run_main(lambda: atomic_write(sys.argv[1], write))
"""


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_a_killed_write_leaves_no_temporary_file(tmp_path, signum):
    """Ctrl-C and SIGTERM (timeout, kill) in the middle of an atomic write: the temporary file
    goes, the target never appears, one line says what to do."""
    # the child starts with SIGINT's default even where the suite runs with it ignored
    proc = subprocess.Popen([sys.executable, '-c', SLOW_WRITE, str(tmp_path / 'tables.md')],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline() == 'writing\n'
    assert len(os.listdir(str(tmp_path))) == 1   # the temporary file
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and err.startswith('interrupted:') and err.count('\n') == 1
    assert os.listdir(str(tmp_path)) == []


LOST_INTERRUPT = """
import os, signal, sys, time
from runkit.cli import run_main

def main():
    try:   # code that loses the Ctrl-C, as C code that clears a callback's exception can
        print('working', flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        pass
    if sys.argv[1] == 'return':
        return
    try:
        time.sleep(60)
        print('ran on to the end')
    finally:
        time.sleep(1.2)   # a cleanup longer than the reminder period runs to its end
        print('cleaned up', flush=True)

run_main(main)
"""


@pytest.mark.parametrize('after', ['return', 'run on'])
def test_a_swallowed_ctrl_c_still_ends_the_command(after):
    """A Ctrl-C that some code swallows is raised again (runkit.cli.REMIND_S later) until it
    reaches run_main, without cutting short the `finally` it then unwinds through; a command
    that returns first still ends with 130, never 0."""
    proc = subprocess.Popen([sys.executable, '-c', LOST_INTERRUPT, after], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline() == 'working\n'
    begun = time.time()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and err.startswith('interrupted:') and err.count('\n') == 1
    assert out == ('' if after == 'return' else 'cleaned up\n')
    assert time.time() - begun < 20


FORK_POOL = """
import multiprocessing
from runkit.cli import run_main

def main():
    with multiprocessing.get_context('fork').Pool(2) as pool:   # its exit sends SIGTERM
        print(pool.map(abs, [-1, -2]))

run_main(main)
"""


def test_the_workers_of_a_pool_stop_quietly():
    done = subprocess.run([sys.executable, '-c', FORK_POOL], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, '[1, 2]\n', '')


def test_a_worker_already_exiting_lets_its_exit_finish(monkeypatch):
    # the pool's SIGTERM can reach a worker inside multiprocessing's exit finalizers (seen
    # once in CI, Python 3.13): exiting there again would print an ignored SystemExit
    import multiprocessing.util
    monkeypatch.setattr(cli, '_main_pid', os.getpid() + 1)   # this process is a worker
    with pytest.raises(SystemExit) as stopped:
        cli._on_sigterm(signal.SIGTERM, None)
    assert stopped.value.code == 128 + signal.SIGTERM
    monkeypatch.setattr(multiprocessing.util, '_exiting', True)
    assert cli._on_sigterm(signal.SIGTERM, None) is None


HELPER_POOLS = """
import multiprocessing
import numpy
from runkit.cli import helper_pool, run_main

def main():
    for _ in range(40):
        with helper_pool(2) as pool:
            assert pool.map(abs, [-1, -2]) == [1, 2]
    try:   # an error inside terminates the workers (SIGTERM)
        with helper_pool(2) as pool:
            pool.map(abs, [-1, -2])
            raise ValueError
    except ValueError:
        print('done')

run_main(main)
"""


def test_forked_helpers_end_at_once_at_every_pool_exit():
    # the counting dataset pools end, normally or on an error, with no worker left holding the
    # output pipes (which subprocess.run waits for) and no parent waiting on a worker
    done = subprocess.run([sys.executable, '-c', HELPER_POOLS], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, 'done\n', '')


def test_the_recorded_command_is_shell_quoted(monkeypatch):
    argv = ['friendly/evaluate.py', '--results', 'my results', "--recorded", "it's.json:PD"]
    monkeypatch.setattr(sys, 'argv', argv)
    command = provenance.provenance()['command']
    assert shlex.split(command)[1:] == argv and "'my results'" in command


def test_shuffle_order_state_survives_serialization():
    order = ShuffleOrder(3)
    order(np.arange(10), 0)
    saved = chainer.serializers.DictionarySerializer()
    order.serialize(saved)
    expected = [order(np.arange(10), 0) for _ in range(3)]
    resumed = ShuffleOrder(99)
    resumed.serialize(chainer.serializers.NpzDeserializer(saved.target))
    for e in expected:
        np.testing.assert_array_equal(resumed(np.arange(10), 0), e)


def test_rmax_dmax_are_saved_with_the_link(tmp_path):
    link = BatchRenormalization(4, decay=0.9)
    link.rmax = link.dmax = 10.0
    chainer.serializers.save_npz(str(tmp_path / 'l.npz'), link)
    fresh = BatchRenormalization(4, decay=0.9)
    chainer.serializers.load_npz(str(tmp_path / 'l.npz'), fresh)
    assert (fresh.rmax, fresh.dmax) == (10.0, 10.0)


@pytest.mark.parametrize('record', ['tables', 'robustness'])
def test_records_say_in_their_first_line_when_made_from_uncommitted_changes(record):
    from friendly import robustness_record, tables
    with open(os.path.join(ROOT, 'results', record + '.json' if record == 'tables'
                           else os.path.join('robustness', 'robustness.json'))) as f:
        document = json.load(f)
    for commit, flagged in (('abc', False), ('abc+dirty', True)):
        document['provenance']['commit'] = commit
        text = (tables.markdown(document['networks'], 'note', document['provenance'])
                if record == 'tables' else robustness_record.markdown(document))
        first = text.splitlines()[0]
        assert first.startswith('# ')
        assert first.endswith('(made from a working tree with uncommitted changes)') == flagged


def test_a_run_folder_is_finished_only_with_its_model_and_a_finished_record(tmp_path):
    folder = RunFolder(str(tmp_path))
    assert folder.record() is None and folder.finished_record() is None
    provenance.write_json(folder.settings_path, {'settings': {'seed': 1}, 'finished': True})
    assert folder.finished_record() is None             # no model.npz yet
    open(folder.model_path, 'wb').close()
    assert folder.finished_record() == {'settings': {'seed': 1}, 'finished': True}
    provenance.write_json(folder.settings_path, {'settings': {'seed': 1}, 'finished': False})
    assert folder.finished_record() is None and folder.record()['finished'] is False
    with open(folder.settings_path, 'w') as f:
        f.write('{"settings": ')                          # a damaged record reads as none
    assert folder.record() is None and folder.finished_record() is None
    open(os.path.join(str(tmp_path), 'snapshot.previous'), 'wb').close()
    open(os.path.join(str(tmp_path), 'snapshot'), 'wb').close()
    assert folder.snapshots() == [os.path.join(str(tmp_path), name)
                                  for name in ('snapshot', 'snapshot.previous')]


def test_name_value_pairs_are_checked_in_one_line():
    assert cli.name_value_pairs(['PD=20', 'S=3'], '--epochs-for', ('S', 'PD'), minimum=1) == {
        'PD': 20, 'S': 3}
    assert cli.name_value_pairs(None, '--seed-for', ('S',)) == {}
    for pair, message in (('XYZ=3', "bad --epochs-for 'XYZ=3': expected NAME=N with NAME one of "
                                    "S, PD and N >= 1"),
                          ('PD=0', "bad --epochs-for 'PD=0'"), ('PD=x', "bad --epochs-for")):
        with pytest.raises(cli.UserError, match=re.escape(message)):
            cli.name_value_pairs([pair], '--epochs-for', ('S', 'PD'), minimum=1)


SHARED_CORES_POOL = """
import os
from runkit.cli import BLAS_THREADS, ending_pool, run_main, worker_signals

def main():
    with ending_pool(2, worker_signals, 'spawn', share_cores=True) as pool:
        print(pool.map(os.getenv, BLAS_THREADS), list(map(os.getenv, BLAS_THREADS)))

run_main(main)
"""


@pytest.mark.parametrize('user', [None, '3'])
def test_spawned_workers_share_the_cores_unless_the_user_set_the_threads(user):
    env = {k: v for k, v in os.environ.items() if k not in cli.BLAS_THREADS}
    if user:
        env['OPENBLAS_NUM_THREADS'] = user
    done = subprocess.run([sys.executable, '-c', SHARED_CORES_POOL], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    share = str(max(1, (os.cpu_count() or 1) // 2))
    in_worker = [None, user, None] if user else [share] * 3
    # the workers got their share; the parent's own environment is as it was
    assert done.stdout == '%r %r\n' % (in_worker, [None, user, None])
    with pytest.raises(ValueError, match='spawned'):
        with cli.ending_pool(2, cli.worker_signals, 'fork', share_cores=True):
            pass
