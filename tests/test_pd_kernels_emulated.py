"""The Pairwise Difference CUDA source, checked without a GPU.

Every .cu file under friendly/ must compile with nvcc; the kernels themselves are compiled with g++
against friendly/functions/cuda_emulation.h, run on the CPU with the launch geometry and
macros friendly/functions/pd_kernels.py uses, and compared with the numpy reference. Needs
neither Chainer nor a GPU. What the compiler makes of the kernels (vector loads, registers,
spills) is reported by friendly/benchmarks/bench_pd_ptx.py, not checked here.
"""
import glob
import os
import re
import shutil
import subprocess

import numpy
import pytest

import pd_reference as ref
from friendly.functions import pd_kernels as pdk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(ROOT, 'friendly', 'functions', 'cuda_emulation.h')
DRIVER = os.path.join(ROOT, 'tests', 'pd_emulated_driver.cpp')
CU_FILES = sorted(glob.glob(os.path.join(ROOT, 'friendly', '**', '*.cu'), recursive=True))


def test_source_defines_the_launched_kernels():
    # the launcher compiles SOURCE_PATH and fetches KERNELS from it: each must be an unmangled
    # kernel there, and the nvcc test below must see that file
    assert pdk.SOURCE_PATH in CU_FILES
    with open(pdk.SOURCE_PATH) as f:
        source = f.read()
    defined = re.findall(r'extern "C" __global__ void(?: __launch_bounds__\([^)]*\))?\s+(\w+)\(',
                         source)
    assert sorted(defined) == sorted(pdk.KERNELS)


@pytest.mark.skipif(shutil.which('nvcc') is None, reason='nvcc not found on PATH')
@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('cu', CU_FILES, ids=os.path.basename)
def test_nvcc_compiles(cu, dtype, tmp_path):
    flags = list(pdk.compile_options(dtype))
    flags += ['-D%s=%s' % item for item in pdk.defines(dtype, 4, 4).items()]
    result = subprocess.run(['nvcc', '--ptx', '-x', 'cu'] + flags +
                            [cu, '-o', str(tmp_path / 'kernels.ptx')],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


_built = {}


def _driver(dtype, qn, qo, tmp_path_factory):
    """Path of the emulation driver built for these macros (built once per session)."""
    key = (numpy.dtype(dtype).name, qn, qo)
    if key not in _built:
        out = tmp_path_factory.mktemp('driver') / ('pd_%s_%d_%d' % key)
        flags = ['-D%s=%s' % item for item in pdk.defines(dtype, qn, qo).items()]
        cmd = (['g++', '-std=c++20', '-O1', '-pthread', '-include', HEADER] + flags +
               ['-DPD_SOURCE="%s"' % pdk.SOURCE_PATH, DRIVER, '-o', str(out)])
        result = subprocess.run(cmd, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        _built[key] = str(out)
    return _built[key]


def _run(driver, kernel, grid, n, p, o, chunk, arrays, dtype, folder):
    for name, a in arrays.items():
        numpy.ascontiguousarray(a, dtype=dtype).tofile(str(folder / (name + '.bin')))
    cmd = [driver, kernel] + [str(g) for g in grid] + [str(n), str(p), str(o), str(chunk),
                                                        str(folder)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return numpy.fromfile(str(folder / 'out.bin'), dtype=dtype)


# (patches N, patch size P, outputs O, target blocks): sizes off the tile grid on purpose; the
# last two need several patch tiles / output tiles, and the small target forces split sums
CASES = [
    (3, 5, 3, 3),
    (11, 37, 40, 6),
    (40, 9, 140, 4),
    (20, 28, 10, 5),
    (20, 28, 100, 5),  # the tile shape of the thesis's FC layer at batch 20 (qn 3, qo 4)
    (9, 13, 70, 4),    # qo 3: output tiles of 96, not a power of two
]


@pytest.mark.skipif(shutil.which('g++') is None, reason='g++ not found on PATH')
@pytest.mark.parametrize('dtype', [numpy.float64, numpy.float32])
@pytest.mark.parametrize('n,p,o,target', CASES)
def test_emulated_kernels_match_reference(n, p, o, target, dtype, tmp_path, tmp_path_factory):
    if dtype == numpy.float32 and (n, p, o) not in ((11, 37, 40), (20, 28, 100)):
        pytest.skip('float32 is checked on two cases to keep the suite short')
    rng = numpy.random.default_rng(n * 1000 + p)
    v = rng.normal(0, 2, (n, p))
    w = rng.uniform(-1, 1, (o, p * p))
    gy = rng.normal(0, 1, (n, o))
    qn, qo = pdk.tile_factors(n, o)
    driver = _driver(dtype, qn, qo, tmp_path_factory)
    arrays = {'v': v, 'w': w, 'gy': gy}
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == numpy.float64 else dict(rtol=1e-4, atol=1e-4)

    grid, k_chunk = pdk.forward_geometry(n, p, o, qn, qo, target)
    y = _run(driver, 'forward', grid, n, p, o, k_chunk, arrays, dtype, tmp_path)
    numpy.testing.assert_allclose(y.reshape(n, o), ref.forward(v, w), **tol)

    grid = pdk.grad_w_geometry(n, p, o, qo)
    gw = _run(driver, 'grad_w', grid, n, p, o, 0, arrays, dtype, tmp_path)
    numpy.testing.assert_allclose(gw.reshape(o, p * p), ref.grad_w(v, gy), **tol)

    grid, j_chunk = pdk.grad_patches_geometry(n, p, o, qn, target)
    gv = _run(driver, 'grad_patches', grid, n, p, o, j_chunk, arrays, dtype, tmp_path)
    numpy.testing.assert_allclose(gv.reshape(n, p), ref.grad_patches(v, w, gy), **tol)


def test_geometry_covers_the_problem():
    # every pair and every partner belongs to exactly one piece, and pieces are whole steps
    for n, p, o, target in CASES + [(20, 784, 100, 528), (256, 784, 100, 528)]:
        qn, qo = pdk.tile_factors(n, o)
        grid, k_chunk = pdk.forward_geometry(n, p, o, qn, qo, target)
        assert k_chunk % pdk.FORWARD_PAIRS_PER_STEP == 0
        assert (grid[2] - 1) * k_chunk < p * p <= grid[2] * k_chunk
        assert grid[0] * pdk.OUTPUT_THREADS * qo >= o and grid[1] * pdk.PATCH_THREADS * qn >= n
        grid = pdk.grad_w_geometry(n, p, o, qo)
        assert grid[0] * pdk.GRAD_W_PAIRS >= p * p and grid[1] * pdk.OUTPUT_THREADS * qo >= o
        grid, j_chunk = pdk.grad_patches_geometry(n, p, o, qn, target)
        assert j_chunk % pdk.GRAD_PATCHES_PARTNERS == 0
        assert (grid[2] - 1) * j_chunk < p <= grid[2] * j_chunk
