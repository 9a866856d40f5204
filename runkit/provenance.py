"""Where a result came from (commit, device, command, time) and crash-safe file writes.

Every result file and settings JSON of `counting` and `friendly` goes through here.
"""
import datetime
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile

from runkit.cli import UserError, first_line

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git_commit():
    """The checkout's commit hash, with '+dirty' when tracked files differ from it."""
    try:
        commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=_ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=_ROOT, capture_output=True, text=True).stdout.strip()
        return commit + ('+dirty' if dirty else '')
    except (OSError, subprocess.CalledProcessError):
        # a copy of the tree without .git (e.g. a GPU machine): trust $GIT_COMMIT if given
        return os.environ.get('GIT_COMMIT', 'unknown')


def record_title(title, commit):
    """A record's first line: `title`, saying so when it was made from uncommitted changes."""
    return title + (' (made from a working tree with uncommitted changes)'
                    if str(commit).endswith('+dirty') else '')


def device_description(device):
    """Human-readable hardware behind a Chainer device spec such as '@numpy' or '@cupy:0'."""
    spec = str(device)
    if 'cupy' in spec:
        try:
            import cupy
            props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
            return '%s (%s)' % (spec, props['name'].decode())
        except Exception:  # noqa: BLE001 - description only
            return spec
    return '%s (%s CPU, %d cores)' % (spec, platform.machine(), os.cpu_count() or 0)


def provenance(device='@numpy', **extra):
    """A dict that says how a result was produced; `extra` adds seeds, epochs, etc."""
    info = {
        'command': shlex.join([os.path.basename(sys.executable)] + sys.argv),
        'commit': git_commit(),
        'device': device_description(device),
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'python': platform.python_version(),
    }
    info.update(extra)
    return info


def sha256(path):
    """Hex SHA-256 of a file, read in 1 MB blocks (committed weights are checked with it)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def make_folder(folder):
    """Create `folder` if needed and check that files can be written in it (before long work,
    not after); a one-line UserError if not."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError('%s is a file; expected a folder' % folder)
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise UserError('cannot write in %s (%s)' % (folder, _reason(err))) from None
    return folder


def check_file(path):
    """Check before long work that `path` can be written as a file; a one-line UserError if not."""
    if os.path.isdir(path):
        raise UserError('%s is a folder; expected a file name' % path)
    make_folder(os.path.dirname(os.path.abspath(path)))


def atomic_write(path, write):
    """Call write(tmp_path), then rename tmp_path onto `path`: readers never see half a file, and
    whatever stops the write (an error, Ctrl-C, runkit.cli's SIGTERM) removes tmp_path. A path
    that cannot be written is a one-line UserError."""
    check_file(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                                   prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
        os.close(fd)
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp's 0600 is for the temporary name only
        os.replace(tmp, path)
    except OSError as err:
        raise UserError('cannot write %s (%s)' % (path, _reason(err))) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def _reason(err):
    return err.strerror or first_line(err)


def write_text(path, text):
    """Atomically write a text file."""
    def write(tmp):
        with open(tmp, 'w') as f:
            f.write(text)
    atomic_write(path, write)


def write_json(path, obj):
    """Atomically write `obj` as indented JSON."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + '\n')
