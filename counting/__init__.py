"""Shape counting with saliency (thesis chapter 2): sampler, networks, training, localisation."""
import warnings

# CuPy warns on import when the optional NCCL library is absent; counting never uses NCCL.
warnings.filterwarnings('ignore', message=r'\s*nccl library could not be loaded')
