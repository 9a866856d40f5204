"""Pairwise Difference benchmark: the composed reference ("naive") against the memory-lean path,
on the PD network the registry builds (thesis 3.2.3, Table 3.1).

    python friendly/benchmarks/bench_pd.py                                # CPU, batches 20, 256
    python friendly/benchmarks/bench_pd.py --device @cupy:0               # GPU
    python friendly/benchmarks/bench_pd.py --results results/bench_pd.md  # rewrite the record

The report goes to runs/friendly/bench/bench_pd.md (bench_pd_gpu.md on a GPU); results/ is
written only when --results names it. The layer is the PD network's first: one 28x28 patch per
image (P = 784), 100 outputs, W of 100 x 614,656 float32. For each batch the script measures
forward and forward+backward time of both implementations (median of --repeats after a warm-up)
and their peak extra memory (tracemalloc on the CPU, CuPy's memory pool on the GPU: the most
bytes allocated at once beyond the inputs, minus the returned output and gradients); then the
lean path by part on patch rows (forward, grad W, grad patches: the CUDA kernels on a GPU)
against one read of W, which separates its arithmetic from the Chainer and launch time around
it; then one training iteration of the PD network (its objective, momentum SGD with its learning
rate, the protocol's batch size). Ratios and the targets they are held to are printed and
written with provenance.
"""
import os
import time

import friendly  # noqa: F401  (its Chainer compatibility patches before chainer loads)
import chainer
import numpy

from friendly.benchmarks import benchmarking
from friendly.defaults import NETWORKS, PROTOCOL
from friendly.functions import pairwise_difference as pd_module
from friendly.functions import pd_kernels
from friendly.networks import build_network
from friendly.objective import Objective
from runkit import cli
from runkit.devices import get_device
from runkit.provenance import provenance, record_title, write_text

NETWORK = 'PD'
IMPLS = ('naive', 'lean')


def pd_layer(net):
    """The network's Pairwise Difference link."""
    return next(link for link in net.links() if isinstance(link, pd_module.PairwiseDifference))


def layer_inputs(layer, batch, xp, seed=0):
    """(x, gy) for `layer` applied to whole images (one patch each): pixels 0..255 and an
    output gradient."""
    rng = numpy.random.default_rng(seed)
    out, pairs = layer.W.shape
    channels = int(round(pairs ** 0.5)) // layer.ksize ** 2
    x = rng.integers(0, 256, (batch, channels, layer.ksize, layer.ksize))
    gy = rng.normal(0, 1, (batch, out, 1, 1))
    return xp.asarray(x, dtype=layer.W.dtype), xp.asarray(gy, dtype=layer.W.dtype)


def layer_runs(layer, x, gy):
    """{impl: (forward, forward_backward)}, each returning the arrays it made."""
    def runs(impl):
        def apply(x, W):
            return pd_module.pairwise_difference(x, W, layer.ksize, layer.stride, layer.pad,
                                                 impl=impl)

        def forward():
            with chainer.no_backprop_mode():
                return apply(x, layer.W.array).array,

        def forward_backward():
            xv, Wv = chainer.Variable(x), chainer.Variable(layer.W.array)
            y = apply(xv, Wv)
            y.grad = gy
            y.backward()
            return y.array, xv.grad, Wv.grad
        return forward, forward_backward
    return {impl: runs(impl) for impl in IMPLS}


def lean_parts(x, W, gy):
    """{part: run} of the lean path on patch rows, without Chainer: the chunked numpy functions
    on the CPU, the kernels of friendly/functions/pd_kernels.py on a GPU."""
    v, g = x.reshape(x.shape[0], -1), gy.reshape(gy.shape[0], -1)
    if isinstance(x, numpy.ndarray):
        return {'forward': lambda: (pd_module.lean_forward_cpu(v, W),),
                'grad W': lambda: pd_module.lean_backward_cpu(v, W, g, need_v=False)[1:],
                'grad patches': lambda: pd_module.lean_backward_cpu(v, W, g, need_W=False)[:1]}
    return {'forward': lambda: (pd_kernels.forward(v, W),),
            'grad W': lambda: (pd_kernels.grad_w(v, g),),
            'grad patches': lambda: (pd_kernels.grad_patches(v, W, g),)}


def measure_batch(meter, layer, batch, repeats):
    """{impl: {forward, forward+backward (s), peak (bytes)}, 'parts': {part: s}} at `batch`."""
    x, gy = layer_inputs(layer, batch, meter.xp)
    W = layer.W.array
    row = {'batch': batch}
    for impl, (forward, forward_backward) in layer_runs(layer, x, gy).items():
        row[impl] = {'forward': benchmarking.median_time(meter, forward, repeats),
                     'forward+backward': benchmarking.median_time(meter, forward_backward,
                                                                  repeats),
                     'peak': meter.peak_extra(forward_backward)}
    row['parts'] = {name: benchmarking.median_time(meter, run, repeats)
                    for name, run in lean_parts(x, W, gy).items()}
    row['parts']['W read'] = benchmarking.median_time(meter, lambda: W.sum(), repeats)
    row['time ratio'] = row['lean']['forward+backward'] / row['naive']['forward+backward']
    row['peak ratio'] = row['lean']['peak'] / max(row['naive']['peak'], 1)
    return row


def training_iteration(objective, meter, repeats):
    """Median seconds of one training iteration by phase (forward, backward, update) and in
    total: the network's objective, momentum SGD as it trains, a batch of the protocol's size."""
    optimizer = chainer.optimizers.MomentumSGD(lr=NETWORKS[NETWORK].lr,
                                               momentum=PROTOCOL['momentum'])
    optimizer.setup(objective)
    batch = PROTOCOL['batch_size']
    x, _ = layer_inputs(pd_layer(objective.net), batch, meter.xp, seed=1)
    labels = numpy.random.default_rng(1).integers(0, 10, batch).astype(numpy.int32)
    t = meter.xp.asarray(labels)

    def clock():
        meter.sync()
        return time.perf_counter()

    def iteration():
        marks = [clock()]
        objective.cleargrads()
        loss = objective(x, t)
        marks.append(clock())
        loss.backward()
        marks.append(clock())
        optimizer.update()
        marks.append(clock())
        return numpy.diff(marks)

    iteration()  # warm-up; the first update also creates the momentum buffers
    phases = numpy.median([iteration() for _ in range(repeats)], axis=0)
    result = dict(zip(('forward', 'backward', 'update'), map(float, phases)))
    result['total'] = float(phases.sum())
    return result


def targets(gpu, rows, iteration):
    """[(target, measured, met)]: what the lean path is held to on this kind of device."""
    checks = []
    for row in rows:
        batch, time_ratio, peak_ratio = row['batch'], row['time ratio'], row['peak ratio']
        if gpu:
            checks.append(('batch %d: lean time <= naive' % batch, time_ratio, time_ratio <= 1))
            if batch >= 256:
                checks.append(('batch %d: lean peak <= 1/10 naive' % batch, peak_ratio,
                               peak_ratio <= 0.1))
            if batch <= 32:  # W-bound only while a patch tile covers the batch
                w_read, forward = row['parts']['W read'], row['lean']['forward']
                checks.append(('batch %d: lean forward <= 3x reading W once (%s)'
                               % (batch, _ms(w_read)), forward / w_read, forward <= 3 * w_read))
        else:
            checks.append(('batch %d: lean time <= 1.2x naive' % batch, time_ratio,
                           time_ratio <= 1.2))
            bound = 4 if batch <= 20 else 20
            checks.append(('batch %d: lean peak <= 1/%d naive' % (batch, bound), peak_ratio,
                           peak_ratio <= 1 / bound))
    if iteration is not None and not gpu:
        checks.append(('training iteration <= 0.3 s', iteration['total'],
                       iteration['total'] <= 0.3))
    return checks


def _mib(n):
    return '%.1f MiB' % (n / 2 ** 20)


def _ms(s):
    return ('%.2f ms' if s < 0.01 else '%.1f ms') % (s * 1e3)


def _iteration_text(it):
    return ('PD training iteration, batch %d, Chainer MomentumSGD(lr %g, momentum %g): forward '
            '%s, backward %s, update %s, total %s'
            % (PROTOCOL['batch_size'], NETWORKS[NETWORK].lr, PROTOCOL['momentum'],
               _ms(it['forward']), _ms(it['backward']), _ms(it['update']), _ms(it['total'])))


def report(info, meter, gpu, rows, iteration, checks):
    """The markdown report."""
    lines = [record_title('# Pairwise Difference benchmark', info['commit']), '']
    lines += ['- %s: %s' % item for item in info.items()]
    lines += ['- memory: peak extra bytes by %s (beyond the inputs, minus the returned output '
              'and gradients)' % meter.name, '',
              '| batch | naive fwd+bwd | lean fwd+bwd | time lean/naive | naive fwd | lean fwd |'
              ' naive peak | lean peak | peak lean/naive |', '|' + '---|' * 9]
    for row in rows:
        naive, lean = row['naive'], row['lean']
        lines.append('| %d | %s | %s | %.2f | %s | %s | %s | %s | 1/%.0f |' % (
            row['batch'], _ms(naive['forward+backward']), _ms(lean['forward+backward']),
            row['time ratio'], _ms(naive['forward']), _ms(lean['forward']),
            _mib(naive['peak']), _mib(lean['peak']), 1 / max(row['peak ratio'], 1e-9)))
    lines += ['', 'Lean path by part, on patch rows (%s), against one read of W (`W.sum()`); '
              '"around" is the lean forward above minus its part here (Chainer, im2col, launches):'
              % ('friendly/functions/pd_kernels.py' if gpu else 'chunked numpy'), '',
              '| batch | forward | grad W | grad patches | W read | forward / W read | around |',
              '|' + '---|' * 7]
    for row in rows:
        parts = row['parts']
        lines.append('| %d | %s | %s | %s | %s | %.1f | %s |' % (
            row['batch'], _ms(parts['forward']), _ms(parts['grad W']),
            _ms(parts['grad patches']), _ms(parts['W read']), parts['forward'] / parts['W read'],
            _ms(row['lean']['forward'] - parts['forward'])))
    lines.append('')
    if iteration is not None:
        lines += ['- ' + _iteration_text(iteration), '']
    lines += ['| target | measured | verdict |', '|---|---|---|']
    lines += ['| %s | %.3f | %s |' % (name, value, 'PASS' if ok else 'FAIL')
              for name, value, ok in checks]
    lines += ['', 'Regenerate: `%s`' % info['command'], '']
    return '\n'.join(lines)


def run(args):
    device = get_device(args.device)
    gpu = device.xp is not numpy
    meter = benchmarking.meter_for(device)
    path = benchmarking.report_path(args.results, 'bench_pd_gpu.md' if gpu else 'bench_pd.md')
    objective = Objective(build_network(NETWORK), NETWORKS[NETWORK].gmr_weight)
    objective.to_device(device)
    layer = pd_layer(objective.net)
    info = provenance(device=args.device, repeats=args.repeats, batches=list(args.batches),
                      load_average_at_start=', '.join('%.1f' % a for a in os.getloadavg()),
                      layer='%s network, Pairwise Difference W %s %s, %dx%d patch per image'
                      % (NETWORK, 'x'.join(map(str, layer.W.shape)), layer.W.dtype,
                         layer.ksize, layer.ksize))
    print('device %s, repeats %d, batches %s; report: %s'
          % (args.device, args.repeats, ' '.join(map(str, args.batches)), path))

    rows = []
    for batch in args.batches:
        row = measure_batch(meter, layer, batch, args.repeats)
        for impl in IMPLS:
            print('batch %4d %-5s forward %s, forward+backward %s, peak extra %s'
                  % (batch, impl, _ms(row[impl]['forward']), _ms(row[impl]['forward+backward']),
                     _mib(row[impl]['peak'])))
        parts = row['parts']
        print('batch %4d lean/naive: time %.2f, peak 1/%.0f; lean parts: forward %s, grad W %s, '
              'grad patches %s, W read %s (forward / W read %.1f)'
              % (batch, row['time ratio'], 1 / max(row['peak ratio'], 1e-9),
                 _ms(parts['forward']), _ms(parts['grad W']), _ms(parts['grad patches']),
                 _ms(parts['W read']), parts['forward'] / parts['W read']))
        rows.append(row)
    iteration = None
    if not args.no_train:
        iteration = training_iteration(objective, meter, args.repeats)
        print(_iteration_text(iteration))
    checks = targets(gpu, rows, iteration)
    for name, value, ok in checks:
        print('%-55s %8.3f  %s' % (name, value, 'PASS' if ok else 'FAIL'))
    write_text(path, report(info, meter, gpu, rows, iteration, checks))
    print('wrote %s' % path)


def main(argv=None):
    parser = cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='@numpy',
                        help='@numpy (CPU) or @cupy:N (GPU N); default @numpy')
    parser.add_argument('--repeats', type=cli.positive_int, default=3,
                        help='timed repetitions per measurement, after one warm-up (median)')
    parser.add_argument('--batches', type=cli.positive_int, nargs='+', default=[20, 256],
                        help='batch sizes of the layer measurements (default: 20 256)')
    parser.add_argument('--results', metavar='PATH', default=None,
                        help='write the report to PATH (a file, or a folder to hold '
                             'bench_pd.md / bench_pd_gpu.md), e.g. results/bench_pd.md to '
                             'rewrite the record; default: runs/friendly/bench/')
    parser.add_argument('--no-train', action='store_true',
                        help='skip the training-iteration measurement')
    run(parser.parse_args(argv))


if __name__ == '__main__':
    cli.run_main(main)
