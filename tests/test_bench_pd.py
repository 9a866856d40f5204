"""friendly/bench_pd.py runs end to end on the CPU (tiny batch, one repeat) and writes its report."""
import importlib

import numpy

from friendly import bench_pd

pd_module = importlib.import_module('friendly.pairwise_difference')  # the module, not the function


def test_bench_pd_writes_report(tmp_path, capsys):
    out = tmp_path / 'bench.md'
    bench_pd.main(['--batches', '2', '--repeats', '1', '--no-train', '--out', str(out)])
    text = out.read_text()
    assert '- commit: ' in text and '- device: @numpy' in text
    rows = [line for line in text.splitlines() if line.startswith('| 2 |')]
    assert len(rows) == 2  # the naive/lean table and the by-part table
    assert 'batch 2: lean time <= 1.2x naive' in text
    assert 'Regenerate: `' in text


def test_lean_parts_are_the_forward_and_both_gradients():
    _, W, gy = bench_pd._data(numpy, 2)
    x = numpy.random.default_rng(0).normal(0, 2, (2, 1, 28, 28)).astype(numpy.float32)
    parts = {name: run() for name, run in
             bench_pd.lean_parts(pd_module, x, W, gy).items()}
    v, g = x.reshape(2, -1).astype(numpy.float64), gy.reshape(2, -1).astype(numpy.float64)
    W64, pdk = W.astype(numpy.float64), bench_pd.pdk
    numpy.testing.assert_allclose(parts['forward'][0], pdk.reference_forward(v, W64), rtol=1e-3)
    numpy.testing.assert_allclose(parts['grad W'][0], pdk.reference_grad_w(v, g), atol=1e-4)
    numpy.testing.assert_allclose(parts['grad patches'][0],
                                  pdk.reference_grad_patches(v, W64, g), rtol=1e-3, atol=1e-3)
