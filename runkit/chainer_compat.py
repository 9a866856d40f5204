"""Chainer 7.8.1 on NumPy 2, Python 3.12+ and current setuptools: small named patches, each
applied only where the running versions need it.

Chainer is end-of-life upstream; its last release predates NumPy 2.0, Python 3.12 and CuPy 14.
Importing this module before Chainer lets Chainer import and compute as it does on the versions
it was written for; on those (NumPy 1.26, Python 3.11, setuptools < 80.9) it changes nothing.
`runkit`, `friendly` and `counting` import it first thing, so every script, test and user
program that imports one of them before Chainer has it.

The patches (PATCHES: name -> what it replaces and why); APPLIED lists those this process
needed, in order:

    numpy.sctypes         NumPy 2.0 removed the table; chainer.functions.array.as_strided reads it
    numpy.distutils       gone on Python 3.12+ and in NumPy 2; chainer._environment_check imports it
    pkg_resources         gone from recent setuptools (84.0 has none; 81.0 still had it);
                          chainer._environment_check imports it
    pkg_resources notice  setuptools 80.9 and later warn on that import, on every command's stderr
    cudnn notice          CuPy 14 has no cuDNN, and Chainer warns on first GPU use to reinstall
                          CuPy with it (advice no CuPy 14 can follow)

Nothing else needs patching (checked by importing Chainer and running the whole test suite on
NumPy 2.5 with Python 3.13, and by reading the NumPy and CuPy names Chainer uses):

- Chainer's other NumPy names that NumPy no longer has are np.float in F.resize_images (gone
  since NumPy 1.24, so broken on 1.26 as well; this project never calls it) and docstrings.
- NumPy 2's scalar promotion (NEP 50) changes no Chainer result measured here: re-deriving the
  committed tables under NumPy 2.5 changes one number by one test image, and that comes from
  the OpenBLAS bundled with each NumPy wheel (with that network's float32 matrix products done
  in float64, NumPy 1.26 and 2.5 agree bit for bit; README, Install).
- CuPy 14 removed cuDNN (cupy.cuda.cudnn, cupy.cudnn). Chainer's own import already catches
  that: chainer.backends.cuda.cudnn_enabled is False and every function runs on Chainer's CuPy
  kernels, as with config.use_cudnn = 'never' (the 'cudnn notice' patch only silences the
  advice to reinstall CuPy, through Chainer's own switch CHAINER_CUDNN=0). Where CuPy 13 had cuDNN, convolutions, pooling,
  softmax and batch normalization on the GPU may therefore differ from it in the last bits.

The environment variable RUNKIT_CHAINER_COMPAT_SKIP (patch names, comma-separated) leaves
patches out; the tests use it to show that each patch is needed where it applies.
"""
import importlib.metadata
import importlib.util
import os
import re
import sys
import types
import warnings

import numpy

PATCHES = {}   # name -> (what it replaces and why, function applying it if needed)
APPLIED = []   # names of the patches applied in this process, in order


def _patch(name, why):
    def register(function):
        PATCHES[name] = (why, function)
        return function
    return register


def _stub_module(name, **attributes):
    module = types.ModuleType(name, 'Stub made by runkit.chainer_compat: %s is not installed '
                                    'here; Chainer 7.8.1 imports it.' % name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


@_patch('numpy.sctypes', 'restores numpy.sctypes (removed in NumPy 2.0) with its NumPy 1.26 '
                         'value: chainer.functions.array.as_strided reads it on import')
def _sctypes():
    if hasattr(numpy, 'sctypes'):
        return False
    numpy.sctypes = {
        'int': [numpy.int8, numpy.int16, numpy.int32, numpy.int64],
        'uint': [numpy.uint8, numpy.uint16, numpy.uint32, numpy.uint64],
        'float': [numpy.float16, numpy.float32, numpy.float64, numpy.longdouble],
        'complex': [numpy.complex64, numpy.complex128, numpy.clongdouble],
        'others': [bool, object, bytes, str, numpy.void],
    }
    return True


@_patch('numpy.distutils', 'stubs numpy.distutils.system_info (absent on Python 3.12+ and in '
                           'NumPy 2): chainer._environment_check imports it only to look for '
                           "macOS's Accelerate BLAS, and the stub reports no BLAS")
def _numpy_distutils():
    if importlib.util.find_spec('numpy.distutils') is not None:
        return False
    system_info = _stub_module('numpy.distutils.system_info',
                               get_info=lambda name, notfound_action=0: {})
    package = _stub_module('numpy.distutils', __path__=[], system_info=system_info)
    numpy.distutils = package
    return True


class _DistributionNotFound(Exception):
    pass


class _VersionConflict(Exception):
    pass


def _not_installed(requirement):
    raise _DistributionNotFound(requirement)


@_patch('pkg_resources', 'stubs pkg_resources (gone from recent setuptools): '
                         'chainer._environment_check imports it to warn about old CuPy and iDeep '
                         'packages, and the stub reports them not installed')
def _pkg_resources():
    if importlib.util.find_spec('pkg_resources') is not None:
        return False
    _stub_module('pkg_resources', require=_not_installed, get_distribution=_not_installed,
                 DistributionNotFound=_DistributionNotFound, VersionConflict=_VersionConflict)
    return True


def _setuptools_version():
    """(major, minor) of the installed setuptools, or None."""
    try:
        found = re.match(r'(\d+)\.(\d+)', importlib.metadata.version('setuptools'))
    except importlib.metadata.PackageNotFoundError:
        return None
    return (int(found.group(1)), int(found.group(2))) if found else None


@_patch('pkg_resources notice', 'silences the UserWarning that pkg_resources prints when '
                                'chainer._environment_check imports it under setuptools 80.9 or '
                                'later (earlier ones warn with a hidden DeprecationWarning)')
def _pkg_resources_notice():
    version = _setuptools_version()
    if 'pkg_resources' in APPLIED or version is None or version < (80, 9):
        return False
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated as an API',
                            category=UserWarning, module=r'chainer\._environment_check')
    return True


@_patch('cudnn notice', 'sets CHAINER_CUDNN=0 (unless set) where CuPy has no cuDNN (CuPy 14): '
                        'chainer.backends.cuda.check_cuda_available otherwise warns to reinstall '
                        'CuPy with cuDNN, which CuPy 14 cannot have')
def _cudnn_notice():
    spec = importlib.util.find_spec('cupy')
    if spec is None or 'CHAINER_CUDNN' in os.environ:
        return False
    if any(os.path.exists(os.path.join(folder, 'cuda', 'cudnn.py'))
           for folder in spec.submodule_search_locations or ()):
        return False                                 # CuPy 13 and earlier have it
    os.environ['CHAINER_CUDNN'] = '0'
    return True


def apply():
    """Apply every patch the running versions need, once; return the names applied so far."""
    skip = {s.strip() for s in os.environ.get('RUNKIT_CHAINER_COMPAT_SKIP', '').split(',')}
    for name, (_, function) in PATCHES.items():
        if name not in skip and name not in APPLIED and function():
            APPLIED.append(name)
    return list(APPLIED)


apply()
