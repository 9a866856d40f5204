"""Command-line plumbing: bad input ends as one line on stderr (exit 2), never a traceback."""
import argparse
import contextlib
import multiprocessing
import multiprocessing.util
import os
import signal
import sys


class UserError(Exception):
    """A problem with what the user gave (file, option, setting); the message says what to do."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors raise UserError (one line) instead of printing usage."""

    def error(self, message):
        raise UserError('%s (see %s --help)' % (message, self.prog))


_main_pid = None   # the process that runs run_main
_interrupted = False   # a Ctrl-C or SIGTERM has reached run_main's process


def _on_sigterm(signum, frame):
    """SIGTERM is Ctrl-C in the process that runs run_main and a quiet exit in its workers;
    either way every `finally` (atomic writes' temporary files) runs. A worker already in
    multiprocessing's own exit (its finalizers) is left to finish it: an exit raised there
    would only print a traceback of an ignored exception."""
    if os.getpid() == _main_pid:
        _on_interrupt(signum, frame)
    if multiprocessing.util.is_exiting():
        return
    sys.exit(128 + signum)


REMIND_S = 0.5   # while an interrupt has not reached run_main, it is raised again this often


def _on_interrupt(signum, frame):
    """Ctrl-C (or SIGTERM) in run_main's process: KeyboardInterrupt now, and again every
    REMIND_S seconds until it reaches run_main. Some C code clears an exception raised in a
    Python callback it calls (numpy's special-attribute lookups, for one), and a Ctrl-C that
    lands there would otherwise be lost: the command would run on to a normal exit."""
    global _interrupted
    _interrupted = True
    signal.setitimer(signal.ITIMER_REAL, REMIND_S, REMIND_S)
    raise KeyboardInterrupt


def _remind(signum, frame):
    """The repeated KeyboardInterrupt of _on_interrupt; not while the first one is still
    being handled (its `finally` blocks and `except` clauses run with it as the current
    exception)."""
    if not isinstance(sys.exc_info()[1], KeyboardInterrupt):
        raise KeyboardInterrupt


def worker_signals():
    """Initializer of a worker process: it leaves Ctrl-C to its parent, which stops it with
    SIGTERM (Pool.terminate)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)


def helper_signals():
    """Initializer of a forked worker that writes only into what its parent owns (and cleans
    up): Ctrl-C is the parent's, and SIGTERM (Pool.terminate) ends it at once. The inherited
    Python handler would run the interpreter's exit in a copy of a multi-threaded process,
    which can hang on a lock."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


BLAS_THREADS = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')


@contextlib.contextmanager
def blas_threads(threads):
    """While it lasts, processes started fresh (spawn) give their BLAS `threads` threads, unless
    the user set a thread count. Two workers that each start one BLAS thread per core would
    run twice as many threads as there are cores, and idle BLAS threads spin."""
    saved = {name: os.environ.get(name) for name in BLAS_THREADS}
    if not any(saved.values()):
        os.environ.update({name: str(threads) for name in BLAS_THREADS})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def ending_pool(workers, initializer, start='fork', share_cores=False):
    """A multiprocessing Pool whose normal exit lets each worker read the end-of-work sentinel
    and leave by itself (close, join); only an error or Ctrl-C terminates the workers.
    (`with Pool` terminates at every exit, and that can leave parent and a worker waiting on
    each other for ever: 1 of 3 test runs of 40 fork-pool exits on a loaded 2-core machine, and
    a spawn pool's exit under Python 3.13 in CI.) `share_cores` (spawn only): each worker's
    BLAS gets cores / workers threads (blas_threads)."""
    if share_cores and start != 'spawn':
        raise ValueError('share_cores needs spawned workers: a forked one keeps its BLAS')
    threads = max(1, (os.cpu_count() or 1) // workers) if share_cores else None
    with blas_threads(threads) if threads else contextlib.nullcontext():
        pool = multiprocessing.get_context(start).Pool(workers, initializer=initializer)
    try:
        yield pool
    except BaseException:
        pool.terminate()
        raise
    else:
        pool.close()
    finally:
        pool.join()


def helper_pool(workers):
    """ending_pool of forked helper_signals workers (the counting dataset pools)."""
    return ending_pool(workers, helper_signals)


def run_main(main):
    """Run main(); turn UserError (and Ctrl-C or SIGTERM, e.g. from `timeout` or `kill`) into a
    one-line message and an exit status. An interrupt always ends the command with 130, even
    one that some code swallowed (_on_interrupt)."""
    global _main_pid
    _main_pid = os.getpid()
    handlers = {signum: signal.getsignal(signum) for signum in
                (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    if handlers[signal.SIGINT] is not signal.SIG_IGN:   # nohup and background jobs ignore it
        signal.signal(signal.SIGINT, _on_interrupt)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGALRM, _remind)
    try:
        result = main()
        if _interrupted:
            raise KeyboardInterrupt
        return result
    except UserError as err:
        print('error: %s' % err, file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        signal.setitimer(signal.ITIMER_REAL, 0)   # before SystemExit, which a reminder would hide
        print('interrupted: rerun the same command (with --resume where offered) to continue',
              file=sys.stderr)
        sys.exit(130)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def first_line(err):
    """An exception's message in one line (its type when it has none)."""
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def name_value_pairs(pairs, option, names, value='N', minimum=0):
    """{NAME: integer} from an option's 'NAME=N' words; a UserError for a NAME not in `names`
    or an N that is no integer of at least `minimum`."""
    out = {}
    for pair in pairs or []:
        name, _, number = pair.partition('=')
        if name not in names or not number.isdigit() or int(number) < minimum:
            raise UserError('bad %s %r: expected NAME=%s with NAME one of %s%s' % (
                option, pair, value, ', '.join(names),
                ' and %s >= %d' % (value, minimum) if minimum else ''))
        out[name] = int(number)
    return out


def int_arg(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('not an integer: %r' % text) from None


def positive_int(text):
    value = int_arg(text)
    if value <= 0:
        raise argparse.ArgumentTypeError('must be a positive integer, got %s' % text)
    return value


def non_negative_int(text):
    value = int_arg(text)
    if value < 0:
        raise argparse.ArgumentTypeError('must be zero or more, got %s' % text)
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('not a number: %r' % text) from None
    if not value > 0:
        raise argparse.ArgumentTypeError('must be positive, got %s' % text)
    return value
