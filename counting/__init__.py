"""Shape counting with saliency (thesis chapter 2): sampler, networks, training, localisation."""
import warnings

import runkit.chainer_compat  # noqa: F401  (before Chainer: NumPy 2 / Python 3.12+ / CuPy 14)

# CuPy warns on import when the optional NCCL library is absent; counting never uses NCCL.
warnings.filterwarnings('ignore', message=r'\s*nccl library could not be loaded')
