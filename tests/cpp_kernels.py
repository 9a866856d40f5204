"""Run a CuPy ElementwiseKernel body on the CPU: wrapped in a C++ loop over arrays, built with
g++ for float or double (T), the body compiled exactly as written (C++ promotion rules included)."""
import subprocess

import numpy as np

CTYPES = {np.float32: 'float', np.float64: 'double'}


def harness(params_in, params_out, body, ctype):
    """C++ program: reads the input arrays (binary, n elements each), writes the output."""
    names_in = [p.split()[-1] for p in params_in.split(',')]
    out = params_out.split()[-1]
    lines = ['#include <cmath>', '#include <cstdio>', '#include <vector>', '#include <algorithm>',
             'using namespace std;', 'typedef %s T;' % ctype, 'int main(int argc, char** argv) {',
             '  long n = atol(argv[1]);']
    for k, name in enumerate(names_in):
        lines += ['  vector<T> %s_a(n);' % name,
                  '  { FILE* f = fopen(argv[%d], "rb"); fread(%s_a.data(), sizeof(T), n, f); '
                  'fclose(f); }' % (k + 2, name)]
    lines += ['  vector<T> %s_a(n);' % out, '  for (long i = 0; i < n; ++i) {']
    lines += ['    T %s = %s_a[i];' % (name, name) for name in names_in]
    lines += ['    T %s;' % out, '    %s' % body, '    %s_a[i] = %s;' % (out, out), '  }',
              '  FILE* f = fopen(argv[%d], "wb"); fwrite(%s_a.data(), sizeof(T), n, f); '
              'fclose(f);' % (len(names_in) + 2, out), '  return 0;', '}']
    return '#include <cstdlib>\n' + '\n'.join(lines) + '\n'


def run_body(kernel, arrays, dtype, tmp_path):
    source = tmp_path / 'kernel.cpp'
    source.write_text(harness(*kernel, CTYPES[dtype]))
    binary = tmp_path / 'kernel'
    subprocess.run(['g++', '-O1', '-o', str(binary), str(source)], check=True)
    paths = []
    for k, array in enumerate(arrays):
        path = tmp_path / ('in%d.bin' % k)
        np.ascontiguousarray(array, dtype=dtype).tofile(path)
        paths.append(str(path))
    out = tmp_path / 'out.bin'
    n = arrays[0].size
    subprocess.run([str(binary), str(n)] + paths + [str(out)], check=True)
    return np.fromfile(out, dtype=dtype)
