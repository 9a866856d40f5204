"""runkit/chainer_compat.py: each patch is needed where it applies, nothing is patched where
Chainer 7.8.1 runs as released, and Chainer computes the same with the patches.

A patch's need is shown in a fresh interpreter with that patch left out
(RUNKIT_CHAINER_COMPAT_SKIP): `import chainer` then fails. The gradient checks of the project's
own functions (test_friendly_functions, test_pairwise_difference, test_counting_*) run on both
NumPy lines in CI (.ci/run), with these patches in place.
"""
import importlib.util
import os
import subprocess
import sys
import warnings

import chainer
import chainer.functions as F
import numpy as np
import pytest
from chainer import gradient_check

from runkit import chainer_compat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUMPY_2 = int(np.__version__.split('.')[0]) >= 2
IMPORT_CHAINER = 'import runkit, chainer; print(runkit.chainer_compat.APPLIED)'


def python(code, skip=''):
    """Run `code` in a fresh interpreter, with the patches named in `skip` left out."""
    env = dict(os.environ, RUNKIT_CHAINER_COMPAT_SKIP=skip)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (ROOT, env.get('PYTHONPATH')) if p)
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          env=env, cwd=ROOT)


def test_each_patch_says_in_one_line_what_it_replaces_and_why():
    assert list(chainer_compat.PATCHES) == ['numpy.sctypes', 'numpy.distutils', 'pkg_resources',
                                            'pkg_resources notice', 'cudnn notice']
    for name, (why, _) in chainer_compat.PATCHES.items():
        assert '\n' not in why and name.split()[0].lower() in why.lower(), name
        assert 'chainer.' in why, name


def test_every_entry_point_applies_the_patches_before_chainer():
    # the packages import the module first thing; so does this test session (conftest)
    for package in ('runkit', 'friendly', 'counting'):
        done = python('import sys, %s; print("chainer" in sys.modules, '
                      '"runkit.chainer_compat" in sys.modules)' % package)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ['False', 'True'], package


@pytest.mark.skipif(NUMPY_2 or sys.version_info >= (3, 12)
                    or importlib.util.find_spec('pkg_resources') is None,
                    reason='Chainer 7.8.1 runs as released only on NumPy 1.x, Python < 3.12 and a '
                           'setuptools with pkg_resources')
def test_nothing_is_patched_where_chainer_runs_as_released():
    assert chainer_compat.APPLIED == []
    done = python(IMPORT_CHAINER)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '[]'
    # Chainer's imports got the real modules
    import numpy.distutils.system_info
    import pkg_resources
    assert numpy.distutils.system_info.__file__ and pkg_resources.__file__
    assert np.sctypes['float'][:3] == [np.float16, np.float32, np.float64]


@pytest.mark.skipif(not NUMPY_2, reason='NumPy %s still has numpy.sctypes (removed in 2.0)'
                                        % np.__version__)
def test_sctypes_is_restored_on_numpy_2():
    assert 'numpy.sctypes' in chainer_compat.APPLIED
    done = python('import numpy; print(hasattr(numpy, "sctypes"))')
    assert done.stdout.strip() == 'False'          # NumPy itself no longer has it
    done = python(IMPORT_CHAINER, skip='numpy.sctypes')
    assert done.returncode != 0 and 'sctypes' in done.stderr.splitlines()[-1]
    done = python(IMPORT_CHAINER)
    assert done.returncode == 0, done.stderr
    # NumPy 1.26's value
    assert np.sctypes['int'] == [np.int8, np.int16, np.int32, np.int64]
    assert np.sctypes['float'] == [np.float16, np.float32, np.float64, np.longdouble]


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_as_strided_computes_as_before(dtype):
    """F.as_strided reads numpy.sctypes at import and in its backward."""
    x = np.arange(6, dtype=dtype)
    y = F.as_strided(x, (4, 3), (1, 1))            # overlapping windows of 3
    np.testing.assert_array_equal(y.array, [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]])
    xv = chainer.Variable(x)
    F.sum(F.as_strided(xv, (4, 3), (1, 1))).backward()
    assert xv.grad.dtype == dtype
    np.testing.assert_array_equal(xv.grad, [1, 2, 3, 3, 2, 1])
    rng = np.random.RandomState(0)
    gradient_check.check_backward(lambda a: F.as_strided(a, (4, 3), (1, 1)),
                                  rng.normal(size=6).astype(dtype),
                                  rng.normal(size=(4, 3)).astype(dtype), dtype=np.float64)


@pytest.mark.skipif('numpy.distutils' not in chainer_compat.APPLIED,
                    reason='numpy.distutils exists here (NumPy %s, Python %d.%d)'
                           % ((np.__version__,) + sys.version_info[:2]))
def test_numpy_distutils_is_stubbed_where_it_is_gone():
    done = python('import importlib.util; print(importlib.util.find_spec("numpy.distutils"))')
    assert done.stdout.strip() == 'None'           # NumPy itself has none
    done = python(IMPORT_CHAINER, skip='numpy.distutils')
    assert done.returncode != 0 and 'numpy.distutils' in done.stderr.splitlines()[-1]
    from chainer import _environment_check
    assert sys.modules['numpy.distutils.system_info'].get_info('blas_opt') == {}
    _environment_check.check()                     # Chainer's own check runs on the stub


def test_pkg_resources_is_stubbed_where_setuptools_has_none():
    # setuptools >= 81 has no pkg_resources; `None` in sys.modules makes it unimportable here
    hide = 'import sys; sys.modules["pkg_resources"] = None; '
    done = python(hide + IMPORT_CHAINER, skip='pkg_resources')
    assert done.returncode != 0 and 'pkg_resources' in done.stderr.splitlines()[-1]
    done = python(hide + IMPORT_CHAINER + '; chainer._environment_check.check()')
    assert done.returncode == 0, done.stderr
    assert "'pkg_resources'" in done.stdout
    if importlib.util.find_spec('pkg_resources') is not None and \
            'pkg_resources' not in chainer_compat.APPLIED:
        import pkg_resources
        assert pkg_resources.__file__              # the real one, untouched


def fake_package(folder, name, source='', files=()):
    """A package `name` under `folder` whose __init__ is `source`, with empty `files` in it."""
    package = folder / name
    package.mkdir(parents=True)
    (package / '__init__.py').write_text(source)
    for file in files:
        (package / file).parent.mkdir(parents=True, exist_ok=True)
        (package / file).write_text('')
    return folder


def python_with(folder, code, skip=''):
    """`python(code, skip)` with `folder` first on the path, and CHAINER_CUDNN unset."""
    env = dict(os.environ, RUNKIT_CHAINER_COMPAT_SKIP=skip)
    env.pop('CHAINER_CUDNN', None)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (str(folder), ROOT, env.get('PYTHONPATH'))
                                        if p)
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          env=env, cwd=ROOT)


NOTICE = ('pkg_resources is deprecated as an API. See https://setuptools.pypa.io/en/latest/'
          'pkg_resources.html. The pkg_resources package is slated for removal as early as '
          '2025-11-30. Refrain from using this package or pin to Setuptools<81.')


@pytest.mark.parametrize('version, applies', [((69, 5), False), ((80, 8), False),
                                              ((80, 9), True), ((81, 0), True)])
def test_the_pkg_resources_notice_is_silenced_under_setuptools_80_9(monkeypatch, version,
                                                                    applies):
    """setuptools 80.9 and later print a UserWarning when Chainer imports pkg_resources: on a
    GPU machine (setuptools 81.0) every command's stderr began with it, before its one-line
    error. Only that warning, at Chainer's import, is silenced."""
    monkeypatch.setattr(chainer_compat, '_setuptools_version', lambda: version)
    monkeypatch.setattr(chainer_compat, 'APPLIED', [])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter('always')
        assert chainer_compat.PATCHES['pkg_resources notice'][1]() == applies
        for module in ('chainer._environment_check', 'elsewhere'):
            warnings.warn_explicit(NOTICE, UserWarning, module.replace('.', '/') + '.py', 7,
                                   module=module)
    assert [w.filename for w in seen] == (['elsewhere.py'] if applies else
                                          ['chainer/_environment_check.py', 'elsewhere.py'])


def test_the_setuptools_version_is_read_from_its_metadata(tmp_path):
    (tmp_path / 'setuptools-80.9.0.dist-info').mkdir()
    (tmp_path / 'setuptools-80.9.0.dist-info' / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: setuptools\nVersion: 80.9.0\n')
    done = python_with(tmp_path, 'from runkit import chainer_compat as c; '
                                 'print(c._setuptools_version())')
    assert done.stdout.strip() == '(80, 9)', done.stderr


@pytest.mark.parametrize('has_cudnn', [False, True])
def test_chainer_is_told_cudnn_is_off_where_cupy_has_none(tmp_path, has_cudnn):
    """CuPy 14 ships no cupy/cuda/cudnn.py (CuPy 13 does): there CHAINER_CUDNN=0 keeps
    Chainer's advice to reinstall CuPy with cuDNN off stderr. A user's own setting wins."""
    fake_package(tmp_path, 'cupy', files=['cuda/__init__.py'] + (
        ['cuda/cudnn.py'] if has_cudnn else []))
    code = ('import os, runkit; print(runkit.chainer_compat.APPLIED, '
            'os.environ.get("CHAINER_CUDNN"))')
    done = python_with(tmp_path, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == ('None' if has_cudnn else '0')
    assert ("'cudnn notice'" in done.stdout) == (not has_cudnn)
    own = python_with(tmp_path, 'import os; os.environ["CHAINER_CUDNN"] = "1"; ' + code)
    assert own.stdout.split()[-1] == '1' and "'cudnn notice'" not in own.stdout
