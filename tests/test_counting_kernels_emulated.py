"""Modified SoftPlus's CuPy ElementwiseKernel bodies, checked without a GPU.

The bodies in counting/activations.py are plain CUDA C expressions over a type T. Each is wrapped
in an elementwise loop, built with g++ for float and double, run on the CPU and compared with the
numpy path and with the closed forms; and each is wrapped in a CUDA kernel, as CuPy does, and
must compile with nvcc.
"""
import shutil
import subprocess

import numpy as np
import pytest

from counting import activations
from cpp_kernels import CTYPES, run_body

@pytest.mark.skipif(shutil.which('g++') is None, reason='g++ is not installed')
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_kernels_match_numpy(dtype, tmp_path):
    rng = np.random.RandomState(0)
    x = np.concatenate([rng.randn(997) * 30, [0.0, -500.0, 500.0]]).astype(dtype)
    log_b = np.full_like(x, np.log(1.1))
    y = run_body(activations.FORWARD_KERNEL, [x, log_b], dtype, tmp_path)
    expected = activations._forward_numpy(x, dtype(np.log(1.1)))
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, expected, rtol=tolerance, atol=tolerance)
    # the closed form log_b(1 + b^x), in float64, also at x = 0 and far into both tails
    x64 = x.astype(np.float64)
    closed = np.logaddexp(0, x64 * np.log(1.1)) / np.log(1.1)
    np.testing.assert_allclose(y, closed, rtol=tolerance, atol=tolerance)
    assert y[-3] == pytest.approx(np.log(2) / np.log(1.1), rel=tolerance)
    assert np.isfinite(y).all() and y[-2] < 1e-15 and y[-1] == pytest.approx(500, rel=tolerance)

    gy = rng.randn(x.size).astype(dtype)
    gx = run_body(activations.GRAD_KERNEL, [expected, gy, log_b], dtype, tmp_path)
    np.testing.assert_allclose(gx, activations._grad_numpy(expected, gy, dtype(np.log(1.1))),
                               rtol=tolerance, atol=tolerance)
    # gx = gy f'(x) with f'(x) = 1 / (1 + b^-x)
    np.testing.assert_allclose(gx, gy / (1 + 1.1 ** -x64), rtol=10 * tolerance, atol=tolerance)


def _cuda_kernel(params_in, params_out, body, ctype):
    """A CUDA kernel applying body elementwise, the way CuPy's ElementwiseKernel wraps it."""
    names_in = [p.split()[-1] for p in params_in.split(',')]
    out = params_out.split()[-1]
    args = ', '.join(['const T* %s_a' % name for name in names_in] + ['T* %s_a' % out, 'long n'])
    lines = ['typedef %s T;' % ctype, 'extern "C" __global__ void elementwise(%s) {' % args,
             '  long i = (long)blockIdx.x * blockDim.x + threadIdx.x;', '  if (i >= n) return;']
    lines += ['  const T %s = %s_a[i];' % (name, name) for name in names_in]
    lines += ['  T %s;' % out, '  %s' % body, '  %s_a[i] = %s;' % (out, out), '}']
    return '\n'.join(lines) + '\n'


@pytest.mark.skipif(shutil.which('nvcc') is None, reason='nvcc not found on PATH')
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('name', ['FORWARD_KERNEL', 'GRAD_KERNEL'])
def test_kernels_compile_with_nvcc(name, dtype, tmp_path):
    source = tmp_path / 'kernel.cu'
    source.write_text(_cuda_kernel(*getattr(activations, name), CTYPES[dtype]))
    result = subprocess.run(['nvcc', '--ptx', str(source), '-o', str(tmp_path / 'kernel.ptx')],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
