"""The Pairwise Difference CUDA source, checked without a GPU.

Every .cu file under friendly/ must compile with nvcc; the kernels themselves are compiled with g++
against friendly/cuda_emulation.h, run on the CPU with the launch geometry friendly/pd_kernels.py
uses, and compared with the numpy reference. Needs neither Chainer nor a GPU.
"""
import glob
import os
import shutil
import subprocess

import numpy
import pytest

from conftest import load_pd_kernels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(ROOT, 'friendly', 'cuda_emulation.h')
DRIVER = os.path.join(ROOT, 'tests', 'pd_emulated_driver.cpp')
CU_FILES = sorted(glob.glob(os.path.join(ROOT, 'friendly', '*.cu')))


pdk = load_pd_kernels('pd_kernels_emulated')


def test_cu_files_exist():
    assert pdk.SOURCE_PATH in CU_FILES


def _ptx_entry(ptx, name):
    """The PTX text of one kernel."""
    start = ptx.index('.entry %s(' % name)
    return ptx[start:ptx.index('\n}', start)]


@pytest.mark.skipif(shutil.which('nvcc') is None, reason='nvcc not found on PATH')
@pytest.mark.parametrize('dtype,qn,qo', [(numpy.float32, 3, 4), (numpy.float32, 4, 4),
                                         (numpy.float64, 4, 4)],
                         ids=['float-batch20', 'float-batch256', 'double'])
@pytest.mark.parametrize('cu', CU_FILES, ids=os.path.basename)
def test_nvcc_compiles(cu, dtype, qn, qo, tmp_path):
    flags = ['-D%s=%s' % item for item in pdk.defines(dtype, qn, qo).items()]
    fast = ['--use_fast_math'] if dtype == numpy.float32 else []  # as the launcher builds float
    result = subprocess.run(['nvcc', '--ptx', '-x', 'cu'] + fast + flags +
                            [cu, '-o', str(tmp_path / 'kernels.ptx')],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    ptx = (tmp_path / 'kernels.ptx').read_text()
    if cu == pdk.SOURCE_PATH and dtype == numpy.float32:
        # the GEMM-like sums read shared memory 16 bytes at a time, as their comments say
        for kernel in ('pd_forward', 'pd_grad_w'):
            assert 'ld.shared.v4.f32' in _ptx_entry(ptx, kernel), kernel
    # SASS for the H100 (sm_90): no register spills
    result = subprocess.run(['nvcc', '--cubin', '-arch=sm_90', '--resource-usage', '-x', 'cu'] +
                            fast + flags + [cu, '-o', str(tmp_path / 'kernels.cubin')],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    usage = result.stdout + result.stderr
    frames = [line for line in usage.splitlines() if 'spill' in line]
    assert frames, usage
    assert all(' 0 bytes spill stores, 0 bytes spill loads' in line for line in frames), usage


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
    numpy.testing.assert_allclose(y.reshape(n, o), pdk.reference_forward(v, w), **tol)

    grid = pdk.grad_w_geometry(n, p, o, qo)
    gw = _run(driver, 'grad_w', grid, n, p, o, 0, arrays, dtype, tmp_path)
    numpy.testing.assert_allclose(gw.reshape(o, p * p), pdk.reference_grad_w(v, gy), **tol)

    grid, j_chunk = pdk.grad_patches_geometry(n, p, o, qn, target)
    gv = _run(driver, 'grad_patches', grid, n, p, o, j_chunk, arrays, dtype, tmp_path)
    numpy.testing.assert_allclose(gv.reshape(n, p), pdk.reference_grad_patches(v, w, gy), **tol)


def test_geometry_covers_the_problem():
    # every pair and every partner belongs to exactly one piece, and pieces are whole steps
    for n, p, o, target in CASES + [(20, 784, 100, 528), (256, 784, 100, 528)]:
        qn, qo = pdk.tile_factors(n, o)
        grid, k_chunk = pdk.forward_geometry(n, p, o, qn, qo, target)
        assert k_chunk % pdk.FORWARD_PAIRS_PER_STEP == 0
        assert (grid[2] - 1) * k_chunk < p * p <= grid[2] * k_chunk
        assert grid[0] * 32 * qo >= o and grid[1] * 8 * qn >= n
        grid = pdk.grad_w_geometry(n, p, o, qo)
        assert grid[0] * pdk.GRAD_W_PAIRS >= p * p and grid[1] * 32 * qo >= o
        grid, j_chunk = pdk.grad_patches_geometry(n, p, o, qn, target)
        assert j_chunk % pdk.GRAD_PATCHES_PARTNERS == 0
        assert (grid[2] - 1) * j_chunk < p <= grid[2] * j_chunk
