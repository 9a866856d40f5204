"""Benchmark of Pairwise Difference: the composed reference ("naive") against the lean path.

    python friendly/bench_pd.py                       # CPU, batches 20 and 256
    python friendly/bench_pd.py --device @cupy:0      # GPU

The problem is the thesis's PD layer: one 28x28 patch per image (P = 784), 100 outputs, W of
100 x 614,656 float32. For each batch it measures forward+backward time (median of --repeats after
a warm-up) and peak extra memory (tracemalloc on the CPU, CuPy's memory pool on the GPU: the most
bytes allocated at once beyond the inputs, minus the returned output and gradients), then one PD
training iteration at batch 20 (forward, backward, momentum SGD). The lean path is also timed by
part on patch rows (forward, grad W, grad patches: the CUDA kernels on a GPU) against one read of
W, which separates kernel time from the Chainer/launch time around it. Ratios and pass/fail
against the targets of issue 3 are printed and written, with provenance, to --out.

On a GPU machine where Chainer cannot run (e.g. CuPy 14 without a matching Chainer), the GPU
part falls back by itself to friendly/pd_kernels.py alone against a pure CuPy composition on the
patch rows, and says so; the training iteration is then skipped.
"""
import argparse
import importlib.util
import os
import sys
import time
import tracemalloc

import numpy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
P_SIDE, N_OUT = 28, 100
LR, MOMENTUM = 0.002, 0.85  # the PD network's learning rate and the thesis's momentum


def _load(name):
    """friendly/<name>.py loaded by path: works where the package's Chainer import fails."""
    spec = importlib.util.spec_from_file_location('bench_pd_' + name,
                                                  os.path.join(ROOT, 'friendly', name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cli = _load('cli')
provenance = _load('provenance')
pdk = _load('pd_kernels')


# --- clocks and memory meters -------------------------------------------------------------

class CpuMeter:
    name = 'tracemalloc'

    def __init__(self):
        self.xp = numpy

    def sync(self):
        pass

    def time(self, run):
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    def peak_extra(self, run):
        """Most bytes live at once during run() beyond what existed before, minus its results."""
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            results = run()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return peak - base - sum(a.nbytes for a in results)


class GpuMeter:
    name = 'CuPy memory pool'

    def __init__(self, device_id):
        import cupy
        self.cupy = cupy
        self.xp = cupy
        cupy.cuda.Device(device_id).use()

    def sync(self):
        self.cupy.cuda.Device().synchronize()

    def time(self, run):
        start, stop = self.cupy.cuda.Event(), self.cupy.cuda.Event()
        self.sync()
        start.record()
        run()
        stop.record()
        stop.synchronize()
        return self.cupy.cuda.get_elapsed_time(start, stop) / 1000

    def peak_extra(self, run):
        cupy = self.cupy
        if not hasattr(cupy.cuda, 'MemoryHook'):  # then: bytes the emptied pool grew to
            pool = cupy.get_default_memory_pool()
            self.sync()
            base = pool.used_bytes()
            pool.free_all_blocks()
            results = run()
            self.sync()
            return pool.total_bytes() - base - sum(a.nbytes for a in results)

        class Peak(cupy.cuda.MemoryHook):
            name = 'bench_pd_peak'

            def __init__(self):
                self.used = self.peak = 0

            def malloc_postprocess(self, **kwargs):
                self.used += kwargs['mem_size']
                self.peak = max(self.peak, self.used)

            def free_postprocess(self, **kwargs):
                self.used -= kwargs['mem_size']

        self.sync()
        hook = Peak()
        with hook:
            results = run()
            self.sync()
        return hook.peak - sum(a.nbytes for a in results)


def _median_time(meter, run, repeats):
    run()  # warm-up: kernel compilation, BLAS threads, pool growth
    meter.sync()
    return float(numpy.median([meter.time(run) for _ in range(repeats)]))


# --- the problems -------------------------------------------------------------------------

def _data(xp, batch, seed=0):
    """MNIST-like pixels 0..255, W uniform in [-1, 1], an output gradient."""
    rng = numpy.random.default_rng(seed)
    x = rng.integers(0, 256, (batch, 1, P_SIDE, P_SIDE)).astype(numpy.float32)
    W = rng.uniform(-1, 1, (N_OUT, P_SIDE ** 4)).astype(numpy.float32)
    gy = rng.normal(0, 1, (batch, N_OUT, 1, 1)).astype(numpy.float32)
    return xp.asarray(x), xp.asarray(W), xp.asarray(gy)


def chainer_runs(pd_module, x, W, gy):
    """{impl: (forward, forward+backward)} through pairwise_difference and Chainer."""
    import chainer

    def runs(impl):
        def forward():
            with chainer.no_backprop_mode():
                return pd_module.pairwise_difference(x, W, P_SIDE, impl=impl).array,

        def forward_backward():
            xv, Wv = chainer.Variable(x), chainer.Variable(W)
            y = pd_module.pairwise_difference(xv, Wv, P_SIDE, impl=impl)
            y.grad = gy
            y.backward()
            return y.array, xv.grad, Wv.grad
        return forward, forward_backward
    return {impl: runs(impl) for impl in ('naive', 'lean')}


def lean_parts(pd_module, x, W, gy):
    """{part: run} of the lean path on patch rows, without Chainer: on the GPU the three kernels
    of friendly/pd_kernels.py, on the CPU the chunked numpy functions."""
    v, g = x.reshape(x.shape[0], -1), gy.reshape(gy.shape[0], -1)
    if isinstance(x, numpy.ndarray):
        return {'forward': lambda: (pd_module.lean_forward_cpu(v, W),),
                'grad W': lambda: pd_module.lean_backward_cpu(v, W, g, need_v=False)[1:],
                'grad patches': lambda: pd_module.lean_backward_cpu(v, W, g, need_W=False)[:1]}
    return {'forward': lambda: (pdk.forward(v, W),),
            'grad W': lambda: (pdk.grad_w(v, g),),
            'grad patches': lambda: (pdk.grad_patches(v, W, g),)}


def kernel_runs(x, W, gy):
    """{impl: (forward, forward+backward)} on patch rows: pd_kernels against plain CuPy."""
    v, g = x.reshape(x.shape[0], -1), gy.reshape(gy.shape[0], -1)
    parts = lean_parts(None, x, W, gy)

    def naive_forward():
        return pdk.reference_forward(v, W),

    def naive_forward_backward():  # what autograd keeps: the sigmoid tensor S from the forward
        n, p = v.shape
        s = pdk.reference_sigmoid_pairs(v)
        y = s @ W.T
        gw = g.T @ s
        d = ((g @ W) * s * (1 - s)).reshape(n, p, p)
        return y, d.sum(axis=2) - d.sum(axis=1), gw

    def lean_forward_backward():
        return tuple(a for part in parts.values() for a in part())
    return {'naive': (naive_forward, naive_forward_backward),
            'lean': (parts['forward'], lean_forward_backward)}


def training_iteration(pd_module, device, meter, repeats):
    """Seconds per PD training iteration at batch 20, by phase, for Chainer's MomentumSGD."""
    import chainer
    import chainer.functions as F
    import chainer.links as L

    class PDNet(chainer.Chain):  # the PD network of Table 3.1: PD 784->100, 100->100, 100->10
        def __init__(self):
            super().__init__()
            with self.init_scope():
                self.pd = pd_module.PairwiseDifference(1, N_OUT, P_SIDE)
                self.l2, self.l3 = L.Linear(N_OUT, 100), L.Linear(100, 10)
                self.r1, self.r2, self.r3 = (L.BatchRenormalization(s, decay=0.8)
                                             for s in (N_OUT, 100, 10))

        def forward(self, x):
            h = F.sigmoid(self.r1(F.reshape(self.pd(x), (x.shape[0], N_OUT))))
            h = F.sigmoid(self.r2(self.l2(h)))
            return F.sigmoid(self.r3(self.l3(h)))

    xp = meter.xp
    model = PDNet()
    model.to_device(device)
    optimizer = chainer.optimizers.MomentumSGD(lr=LR, momentum=MOMENTUM)
    optimizer.setup(model)
    rng = numpy.random.default_rng(1)
    x = xp.asarray(rng.integers(0, 256, (20, 1, P_SIDE, P_SIDE)).astype(numpy.float32))
    t = xp.asarray(numpy.eye(10, dtype=numpy.float32)[rng.integers(0, 10, 20)])
    phases = {'forward': [], 'backward': [], 'update': []}

    def iteration(record):
        meter.sync()
        start = time.perf_counter()
        model.cleargrads()
        loss = F.sum(F.squared_difference(model(x), t)) / x.shape[0]
        meter.sync()
        marks = [time.perf_counter()]
        loss.backward()
        meter.sync()
        marks.append(time.perf_counter())
        optimizer.update()
        meter.sync()
        marks.append(time.perf_counter())
        if record:
            phases['forward'].append(marks[0] - start)
            phases['backward'].append(marks[1] - marks[0])
            phases['update'].append(marks[2] - marks[1])

    iteration(False)
    for _ in range(repeats):
        iteration(True)
    result = {k: float(numpy.median(v)) for k, v in phases.items()}
    result['total'] = sum(result.values())

    # the same update written as one chunked pass over (v, grad, W), for comparison
    W, grad = model.pd.W.array, model.pd.W.grad
    velocity = optimizer.target.pd.W.update_rule.state['v']

    def fused_update():
        step = 1 << 20
        flat_w, flat_g, flat_v = W.reshape(-1), grad.reshape(-1), velocity.reshape(-1)
        for lo in range(0, flat_w.size, step):
            vc = flat_v[lo:lo + step]
            vc *= MOMENTUM
            vc -= LR * flat_g[lo:lo + step]
            flat_w[lo:lo + step] += vc
    if xp is numpy:
        result['fused_update_pd_W'] = _median_time(meter, fused_update, repeats)
    return result


# --- report -------------------------------------------------------------------------------

def _mib(n):
    return '%.1f MiB' % (n / 2 ** 20)


def _ms(s):
    return ('%.2f ms' if s < 0.01 else '%.1f ms') % (s * 1e3)


def _verdict(ok):
    return 'PASS' if ok else 'FAIL'


def run(args):
    gpu = args.device.startswith('@cupy')
    notes = []
    if gpu:
        try:
            meter = GpuMeter(int(args.device.split(':')[1]) if ':' in args.device else 0)
            meter.cupy.arange(2).sum().item()
        except Exception as err:  # noqa: BLE001 - any failure means this device is unusable
            raise cli.UserError('device %s is not usable: %s'
                                % (args.device, str(err).splitlines()[0]))
    else:
        meter = CpuMeter()
    xp = meter.xp

    pd_module, why = None, None
    try:
        if ROOT not in sys.path:
            sys.path.insert(0, ROOT)
        import chainer
        from chainer.backends import cuda
        if gpu and not cuda.available:
            raise RuntimeError('chainer.backends.cuda.available is False')
        pd_module = importlib.import_module('friendly.pairwise_difference')
        if gpu:  # a small trial of both implementations on the device
            x, W, gy = _data(xp, 2)
            for fb in chainer_runs(pd_module, x, W, gy).values():
                fb[1]()
    except Exception as err:  # noqa: BLE001
        if not gpu:
            raise cli.UserError('the CPU benchmark needs Chainer: %s' % err)
        pd_module, why = None, '%s: %s' % (type(err).__name__, str(err).splitlines()[0])
        notes.append('Chainer unusable on this device (%s): timed friendly/pd_kernels.py '
                     'against a pure CuPy composition on patch rows; no training iteration.'
                     % why)
        print('note: ' + notes[-1])

    settings = 'device %s, repeats %d, batches %s, P %d, outputs %d, float32' % (
        args.device, args.repeats, ' '.join(map(str, args.batches)), P_SIDE ** 2, N_OUT)
    print(settings)
    lines = ['# Pairwise Difference benchmark', '']
    info = provenance.provenance(device=args.device, repeats=args.repeats,
                                 batches=list(args.batches),
                                 load_average_at_start=', '.join('%.1f' % a
                                                                 for a in os.getloadavg()))
    lines += ['- %s: %s' % item for item in info.items()]
    lines += ['- path: %s' % ('Chainer pairwise_difference (impl naive vs lean)' if pd_module
                              else 'pd_kernels vs pure CuPy composition (no Chainer)'),
              '- memory: peak extra bytes by %s (beyond the inputs, minus the returned output '
              'and gradients)' % meter.name, '']
    lines += ['| batch | naive fwd+bwd | lean fwd+bwd | time lean/naive | naive fwd | lean fwd |'
              ' naive peak | lean peak | peak lean/naive |', '|' + '---|' * 9]
    checks, part_rows = [], []

    for batch in args.batches:
        x, W, gy = _data(xp, batch)
        runs = chainer_runs(pd_module, x, W, gy) if pd_module else kernel_runs(x, W, gy)
        t, f, m = {}, {}, {}
        for impl in ('naive', 'lean'):
            forward, forward_backward = runs[impl]
            f[impl] = _median_time(meter, forward, args.repeats)
            t[impl] = _median_time(meter, forward_backward, args.repeats)
            m[impl] = meter.peak_extra(forward_backward)
            print('batch %4d %-5s forward %s  forward+backward %s  peak extra %s'
                  % (batch, impl, _ms(f[impl]), _ms(t[impl]), _mib(m[impl])))
        part_times = {name: _median_time(meter, run, args.repeats)
                      for name, run in lean_parts(pd_module, x, W, gy).items()}
        W_read = part_times['W read'] = _median_time(meter, lambda: W.sum(), args.repeats)
        part_rows.append((batch, part_times, f['lean']))
        time_ratio, mem_ratio = t['lean'] / t['naive'], m['lean'] / max(m['naive'], 1)
        lines.append('| %d | %s | %s | %.2f | %s | %s | %s | %s | 1/%.0f |' % (
            batch, _ms(t['naive']), _ms(t['lean']), time_ratio, _ms(f['naive']), _ms(f['lean']),
            _mib(m['naive']), _mib(m['lean']), 1 / max(mem_ratio, 1e-9)))
        if gpu:
            checks.append(('batch %d: lean time <= naive' % batch, time_ratio, time_ratio <= 1))
            if batch >= 256:
                checks.append(('batch %d: lean peak <= 1/10 naive' % batch, mem_ratio,
                               mem_ratio <= 0.1))
            if batch <= 32:  # W-bound only while a patch tile covers the batch
                checks.append(('batch %d: lean forward <= 3x reading W once (%s)'
                               % (batch, _ms(W_read)), f['lean'] / W_read,
                               f['lean'] <= 3 * W_read))
        else:
            checks.append(('batch %d: lean time <= 1.2x naive' % batch, time_ratio,
                           time_ratio <= 1.2))
            bound = 4 if batch <= 20 else 20
            checks.append(('batch %d: lean peak <= 1/%d naive' % (batch, bound), mem_ratio,
                           mem_ratio <= 1 / bound))
        del x, W, gy, runs

    lines += ['', 'Lean path by part, on patch rows (%s), against one read of W (`W.sum()`); '
              '"around" is the lean forward above minus its part here (Chainer, im2col, launches):'
              % ('friendly/pd_kernels.py' if gpu else 'chunked numpy'), '',
              '| batch | forward | grad W | grad patches | W read | forward / W read | around |',
              '|---|---|---|---|---|---|---|']
    for batch, pt, lean_forward in part_rows:
        print('batch %4d lean parts: forward %s, grad W %s, grad patches %s, W read %s'
              % (batch, _ms(pt['forward']), _ms(pt['grad W']), _ms(pt['grad patches']),
                 _ms(pt['W read'])))
        lines.append('| %d | %s | %s | %s | %s | %.1f | %s |' % (
            batch, _ms(pt['forward']), _ms(pt['grad W']), _ms(pt['grad patches']),
            _ms(pt['W read']), pt['forward'] / pt['W read'], _ms(lean_forward - pt['forward'])))

    lines.append('')
    if pd_module is not None and not args.no_train:
        it = training_iteration(pd_module, args.device, meter, args.repeats)
        desc = ('PD training iteration, batch 20, Chainer MomentumSGD(lr %g, momentum %g): '
                'forward %s, backward %s, update %s, total %s'
                % (LR, MOMENTUM, _ms(it['forward']), _ms(it['backward']), _ms(it['update']),
                   _ms(it['total'])))
        print(desc)
        lines += ['- ' + desc]
        if 'fused_update_pd_W' in it:
            alt = it['total'] - it['update'] + it['fused_update_pd_W']
            desc = ('one chunked in-place numpy momentum pass over the PD weights takes %s '
                    '(an iteration with it instead of Chainer\'s update of W: about %s)'
                    % (_ms(it['fused_update_pd_W']), _ms(alt)))
            print(desc)
            lines += ['- ' + desc]
        if not gpu:
            checks.append(('training iteration <= 0.3 s', it['total'], it['total'] <= 0.3))
        lines.append('')

    lines += ['| target | measured | verdict |', '|---|---|---|']
    for name, value, ok in checks:
        print('%-55s %8.3f  %s' % (name, value, _verdict(ok)))
        lines.append('| %s | %.3f | %s |' % (name, value, _verdict(ok)))
    lines += [''] + ['Note: ' + n for n in notes] + ([''] if notes else [])
    lines += ['Regenerate: `%s`' % info['command'], '']
    provenance.write_text(args.out, '\n'.join(lines))
    print('wrote %s' % args.out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='@numpy',
                        help='@numpy (CPU) or @cupy:N (GPU N); default @numpy')
    parser.add_argument('--repeats', type=int, default=3,
                        help='timed repetitions per measurement, after one warm-up (median)')
    parser.add_argument('--batches', type=int, nargs='+', default=[20, 256],
                        help='batch sizes of the FC problem (default: 20 256)')
    parser.add_argument('--out', default=None,
                        help='report path (default results/bench_pd.md, results/bench_pd_gpu.md '
                             'for a GPU)')
    parser.add_argument('--no-train', action='store_true',
                        help='skip the training-iteration measurement')
    args = parser.parse_args(argv)
    if args.device != '@numpy' and not args.device.startswith('@cupy'):
        raise cli.UserError('--device must be @numpy or @cupy:N, got %r' % args.device)
    if args.repeats < 1 or min(args.batches) < 1:
        raise cli.UserError('--repeats and --batches must be positive')
    if args.out is None:
        name = 'bench_pd_gpu.md' if args.device.startswith('@cupy') else 'bench_pd.md'
        args.out = os.path.join(ROOT, 'results', name)
    run(args)


if __name__ == '__main__':
    cli.run_main(main)
