"""What every script of `counting` and `friendly` shares, and nothing model-specific.

    cli         one-line errors for bad input (UserError, Parser, run_main), argument types
    devices     a Chainer device spec checked to be usable, as a one-line error if not
    provenance  where a result came from (commit, device, command) and atomic file writes
    runs        where run folders live, and what one holds (RunFolder)
    renorm      Batch Renormalization whose rmax/dmax are saved, and their epoch schedule
    training    resumable Trainer pieces: a shuffle that snapshots its random state, early stopping
    chainer_compat  Chainer 7.8.1 on NumPy 2, Python 3.12+ and CuPy 14 (imported here, before Chainer)
"""
from runkit import chainer_compat  # noqa: F401  (patches what the running versions need)
