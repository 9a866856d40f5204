"""friendly/benchmarks/bench_pd.py on the CPU at a tiny batch: what its report holds, where it
goes (never into results/ unless asked), and one-line errors for bad options."""
import os
import re
import subprocess
import sys

import numpy
import pytest

import pd_reference as ref
from friendly.benchmarks import bench_pd, bench_pd_ptx, benchmarking
from friendly.defaults import NETWORKS, PROTOCOL
from runkit.cli import UserError
from runkit.devices import get_device

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, 'results')


def _files(folder):
    """{path: (size, modification time)} of every file under folder."""
    found = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            stat = os.stat(os.path.join(parent, name))
            found[os.path.join(parent, name)] = (stat.st_size, stat.st_mtime_ns)
    return found


def _ms(cell):
    value, unit = cell.split()
    assert unit == 'ms', cell
    return float(value)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv('LENSES_RUNS', str(tmp_path / 'runs'))
    return tmp_path / 'runs'


def test_report_under_runs_by_default(runs_dir, capsys):
    before = _files(RESULTS)
    bench_pd.main(['--batches', '2', '--repeats', '1'])
    assert _files(RESULTS) == before
    path = runs_dir / 'friendly' / 'bench' / 'bench_pd.md'
    text = path.read_text()
    assert '- commit: ' in text and '- device: @numpy' in text
    assert '- layer: PD network, Pairwise Difference W 100x614656 float32, 28x28 patch' in text

    rows = [line.split('|')[1:-1] for line in text.splitlines() if line.startswith('| 2 |')]
    assert len(rows) == 2  # the naive/lean table and the by-part table
    naive_fb, lean_fb, time_ratio = _ms(rows[0][1]), _ms(rows[0][2]), float(rows[0][3])
    assert time_ratio == pytest.approx(lean_fb / naive_fb, rel=0.05, abs=0.006)  # printed to 2 decimals
    assert re.fullmatch(r' 1/\d+ ', rows[0][8])
    forward, w_read, per_read = _ms(rows[1][1]), _ms(rows[1][4]), float(rows[1][5])
    assert w_read > 0 and per_read == pytest.approx(forward / w_read, rel=0.1, abs=0.1)

    assert ('PD training iteration, batch %d, Chainer MomentumSGD(lr %g, momentum %g)'
            % (PROTOCOL['batch_size'], NETWORKS['PD'].lr, PROTOCOL['momentum'])) in text
    target = re.search(r'\| batch 2: lean time <= 1.2x naive \| ([\d.]+) \| (PASS|FAIL) \|', text)
    assert float(target.group(1)) == pytest.approx(time_ratio, abs=0.006)
    assert '| training iteration <= 0.3 s |' in text
    assert 'Regenerate: `' in text
    out = capsys.readouterr().out
    assert 'batch    2 lean/naive: time %.2f' % time_ratio in out
    assert 'wrote %s' % path in out


def test_results_option_names_the_report(runs_dir, tmp_path):
    record = tmp_path / 'record.md'
    bench_pd.main(['--batches', '1', '--repeats', '1', '--no-train', '--results', str(record)])
    assert record.read_text().startswith('# Pairwise Difference benchmark')
    assert not runs_dir.exists()


def test_report_path(runs_dir, tmp_path):
    assert benchmarking.report_path(None, 'b.md') == str(runs_dir / 'friendly' / 'bench' / 'b.md')
    assert benchmarking.report_path(str(tmp_path), 'b.md') == str(tmp_path / 'b.md')
    assert benchmarking.report_path(str(tmp_path / 'r.md'), 'b.md') == str(tmp_path / 'r.md')


@pytest.mark.parametrize('argv', [['--device', 'bogus'], ['--repeats', '0'],
                                  ['--batches', '20', 'x']])
def test_bad_option_is_one_line(argv, runs_dir):
    with pytest.raises(UserError) as err:
        bench_pd.main(argv)
    assert '\n' not in str(err.value)
    assert not runs_dir.exists()


def test_unusable_gpu_is_one_line(runs_dir):
    try:
        get_device('@cupy:0')
    except UserError:
        pass
    else:
        pytest.skip('a GPU is usable here')
    result = subprocess.run([sys.executable,
                             os.path.join(ROOT, 'friendly', 'benchmarks', 'bench_pd.py'),
                             '--device', '@cupy:0'], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith('error: ')
    assert not runs_dir.exists()


def test_lean_parts_are_the_forward_and_both_gradients():
    rng = numpy.random.default_rng(0)
    x = rng.normal(0, 2, (3, 1, 6, 6))
    W = rng.uniform(-1, 1, (4, 36 ** 2))
    gy = rng.normal(0, 1, (3, 4, 1, 1))
    parts = {name: run() for name, run in bench_pd.lean_parts(x, W, gy).items()}
    v, g = x.reshape(3, -1), gy.reshape(3, -1)
    numpy.testing.assert_allclose(parts['forward'][0], ref.forward(v, W), rtol=1e-10)
    numpy.testing.assert_allclose(parts['grad W'][0], ref.grad_w(v, g), rtol=1e-10)
    numpy.testing.assert_allclose(parts['grad patches'][0], ref.grad_patches(v, W, g),
                                  rtol=1e-10, atol=1e-12)


def test_compiler_report_reads_ptx_and_ptxas_output():
    ptx = ('.visible .entry pd_forward(\n  ld.shared.v4.f32 {%f1, %f2, %f3, %f4}, [%r1];\n'
           '  ld.shared.v2.f32 {%f5, %f6}, [%r2];\n  ld.shared.v2.f64 {%fd1, %fd2}, [%r3];\n}\n'
           '.visible .entry pd_grad_w(\n  ld.shared.f32 %f7, [%r4];\n}\n')
    assert bench_pd_ptx.shared_vector_loads(ptx, 'pd_forward') == 2
    assert bench_pd_ptx.shared_vector_loads(ptx, 'pd_grad_w') == 0
    usage = bench_pd_ptx.ptxas_usage(
        "ptxas info    : Compiling entry function 'pd_grad_w' for 'sm_90'\n"
        "ptxas info    : Function properties for pd_grad_w\n"
        "    0 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
        "ptxas info    : Used 124 registers, used 1 barriers, 8192 bytes smem\n")
    assert usage == {'pd_grad_w': {'spill stores': 8, 'spill loads': 4, 'registers': 124,
                                   'smem': 8192}}
