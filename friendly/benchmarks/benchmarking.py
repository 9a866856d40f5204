"""What the benchmark scripts share: a clock and a peak-memory meter per device, and where a
report goes (under runs/, or into results/ only when the user names it)."""
import os
import time
import tracemalloc

import numpy

from runkit.provenance import check_file
from runkit.runs import runs_root


def report_path(results, name):
    """The report file: `results` (a file, or a folder to hold `name`), else `name` under
    runs/friendly/bench/; checked to be writable (a one-line error if not) before any work."""
    if results is None:
        path = os.path.join(runs_root('friendly'), 'bench', name)
    elif os.path.isdir(results):
        path = os.path.join(results, name)
    else:
        path = results
    check_file(path)
    return path


def meter_for(device):
    """The meter of a Chainer device: CpuMeter for @numpy, GpuMeter for @cupy:N."""
    return CpuMeter() if device.xp is numpy else GpuMeter(device.xp)


def median_time(meter, run, repeats):
    """Median seconds of run() over `repeats` calls, after one warm-up call."""
    run()  # warm-up: kernel compilation, BLAS threads, memory pool growth
    meter.sync()
    return float(numpy.median([meter.time(run) for _ in range(repeats)]))


class CpuMeter:
    name = 'tracemalloc'
    xp = numpy

    def sync(self):
        pass

    def time(self, run):
        start = time.perf_counter()
        run()
        return time.perf_counter() - start

    def peak_extra(self, run):
        """Most bytes live at once during run() beyond what existed before, minus the arrays
        run() returns."""
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

    def __init__(self, cupy):
        self.xp = cupy

    def sync(self):
        self.xp.cuda.Device().synchronize()

    def time(self, run):
        """Seconds between CUDA events recorded before and after run()."""
        start, stop = self.xp.cuda.Event(), self.xp.cuda.Event()
        self.sync()
        start.record()
        run()
        stop.record()
        stop.synchronize()
        return self.xp.cuda.get_elapsed_time(start, stop) / 1000

    def peak_extra(self, run):
        """Most bytes the memory pool handed out at once during run(), minus the arrays run()
        returns."""
        class Peak(self.xp.cuda.MemoryHook):
            name = 'bench_peak'
            used = peak = 0

            def malloc_postprocess(self, **kwargs):
                self.used += kwargs['mem_size']
                self.peak = max(self.peak, self.used)

            def free_postprocess(self, **kwargs):
                self.used -= kwargs['mem_size']

        hook = Peak()
        self.sync()
        with hook:
            results = run()
            self.sync()
        return hook.peak - sum(a.nbytes for a in results)
