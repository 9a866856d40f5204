"""What nvcc makes of the Pairwise Difference kernels: 16-byte shared loads, registers, spills.

    python friendly/benchmarks/bench_pd_ptx.py          # sm_90 (H100), the PD network's builds
    python friendly/benchmarks/bench_pd_ptx.py --arch sm_80

Compiles friendly/functions/pairwise_difference.cu as friendly/functions/pd_kernels.py builds
it (same macros and options) for the PD layer at batches 20 and 256 in float32 and float64, needs nvcc but no GPU.
Per kernel it reports the 16-byte shared-memory loads in the PTX (the GEMM-like sums of
pd_forward and pd_grad_w are written to read four floats at once), and from ptxas the registers,
shared memory and spill bytes. The report goes to runs/friendly/bench/bench_pd_ptx.md unless
--results names another file. These are facts about one compiler version, not tests.
"""
import os
import re
import shutil
import subprocess
import tempfile

import numpy

from friendly.benchmarks import benchmarking
from friendly.functions import pd_kernels
from runkit import cli
from runkit.provenance import provenance, record_title, write_text

PATCH_SIZE, OUTPUTS = 784, 100  # the PD network's layer: one 28x28 patch per image
BATCHES = (20, 256)
DTYPES = (numpy.float32, numpy.float64)
# Kernels whose sums are written for 16-byte shared reads, in float (their comments say so).
VECTOR_READ_KERNELS = ('pd_forward', 'pd_grad_w')


def _nvcc(args):
    result = subprocess.run(['nvcc'] + args, capture_output=True, text=True)
    if result.returncode != 0:
        raise cli.UserError('nvcc failed: %s' % (result.stderr.strip().splitlines() or ['?'])[0])
    return result.stdout + result.stderr


def shared_vector_loads(ptx, kernel):
    """Number of shared-memory loads of 16 bytes in the PTX of `kernel`."""
    start = ptx.index('.entry %s(' % kernel)
    body = ptx[start:ptx.index('\n}', start)]
    loads = re.findall(r'ld\.shared\.v(\d)\.[a-z]+(\d+)', body)
    return sum(1 for lanes, bits in loads if int(lanes) * int(bits) == 128)


def ptxas_usage(text):
    """{kernel: {registers, smem, spill stores, spill loads}} from nvcc --resource-usage."""
    usage, kernel = {}, None
    for line in text.splitlines():
        match = re.search(r"Compiling entry function '(\w+)'", line)
        if match:
            kernel = match.group(1)
            usage[kernel] = {}
        match = re.search(r'(\d+) bytes spill stores, (\d+) bytes spill loads', line)
        if match and kernel:
            usage[kernel]['spill stores'], usage[kernel]['spill loads'] = map(int, match.groups())
        match = re.search(r'Used (\d+) registers.*?(\d+) bytes smem', line)
        if match and kernel:
            usage[kernel]['registers'], usage[kernel]['smem'] = map(int, match.groups())
    return usage


def compile_build(dtype, batch, arch, folder):
    """[(kernel, measurements)] of one build of the kernels."""
    qn, qo = pd_kernels.tile_factors(batch, OUTPUTS)
    flags = list(pd_kernels.compile_options(dtype))
    flags += ['-D%s=%s' % item for item in pd_kernels.defines(dtype, qn, qo).items()]
    ptx_path, cubin_path = os.path.join(folder, 'k.ptx'), os.path.join(folder, 'k.cubin')
    _nvcc(['--ptx', '-arch=' + arch, '-x', 'cu'] + flags + [pd_kernels.SOURCE_PATH, '-o', ptx_path])
    with open(ptx_path) as f:
        ptx = f.read()
    usage = ptxas_usage(_nvcc(['--cubin', '-arch=' + arch, '--resource-usage', '-x', 'cu'] +
                              flags + [pd_kernels.SOURCE_PATH, '-o', cubin_path]))
    return [(kernel, dict(usage[kernel], **{'16-byte shared loads':
                                            shared_vector_loads(ptx, kernel)}))
            for kernel in pd_kernels.KERNELS]


def main(argv=None):
    parser = cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', default='sm_90',
                        help='GPU architecture to compile for (default sm_90, the H100)')
    parser.add_argument('--results', metavar='PATH', default=None,
                        help='write the report to PATH (a file, or a folder to hold '
                             'bench_pd_ptx.md); default: runs/friendly/bench/')
    args = parser.parse_args(argv)
    if shutil.which('nvcc') is None:
        raise cli.UserError('nvcc is not on PATH; install the CUDA toolkit to compile the kernels')
    path = benchmarking.report_path(args.results, 'bench_pd_ptx.md')
    version = _nvcc(['--version']).strip().splitlines()[-1]
    info = provenance(nvcc=version, arch=args.arch, layer='P %d, %d outputs'
                      % (PATCH_SIZE, OUTPUTS))
    lines = [record_title('# Pairwise Difference kernels, as compiled', info['commit']), '']
    lines += ['- %s: %s' % item for item in info.items()]
    lines += ['', '| build | kernel | registers | shared memory | spill stores | spill loads | '
              '16-byte shared loads |', '|' + '---|' * 7]
    notes = []
    with tempfile.TemporaryDirectory() as folder:
        for dtype in DTYPES:
            for batch in BATCHES:
                build = '%s, batch %d' % (numpy.dtype(dtype).name, batch)
                for kernel, m in compile_build(dtype, batch, args.arch, folder):
                    row = ('| %s | %s | %d | %d B | %d B | %d B | %d |' % (
                        build, kernel, m['registers'], m['smem'], m['spill stores'],
                        m['spill loads'], m['16-byte shared loads']))
                    print(row)
                    lines.append(row)
                    if m['spill stores'] or m['spill loads']:
                        notes.append('%s, %s spills registers' % (build, kernel))
                    if (dtype == numpy.float32 and kernel in VECTOR_READ_KERNELS and
                            not m['16-byte shared loads']):
                        notes.append('%s, %s has no 16-byte shared loads' % (build, kernel))
    notes = notes or ['no spills; pd_forward and pd_grad_w read shared memory 16 bytes at a '
                      'time in float32']
    lines += [''] + ['- ' + note for note in notes]
    lines += ['', 'Regenerate: `%s`' % info['command'], '']
    for note in notes:
        print(note)
    write_text(path, '\n'.join(lines))
    print('wrote %s' % path)


if __name__ == '__main__':
    cli.run_main(main)
