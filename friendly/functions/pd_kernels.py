"""CUDA kernels of Pairwise Difference on patch rows: their launch geometry, build and launch.

Works on patch rows v (N, P), weights w (O, P*P) with w[o, i*P + j] multiplying
sigmoid(v[n, i] - v[n, j]), output gradients gy (N, O). The kernels live in
pairwise_difference.cu; this module builds them once per device, dtype and tile shape and launches
them. It imports only numpy (cupy when a kernel is launched), so it loads without a GPU; the
geometry functions are plain Python, shared with the CPU emulation test.
"""
import os

import numpy

SOURCE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pairwise_difference.cu')

# The kernels' block shape. defines() hands these to pairwise_difference.cu, which checks the
# relations its thread layouts rely on, so this is their only definition.
THREADS = 256                  # PD_THREADS: threads per block
PATCH_THREADS = 8              # PD_TN: threads along patches; a block covers 8 * qn patches
OUTPUT_THREADS = 32            # PD_TO: threads along outputs; a block covers 32 * qo outputs
FORWARD_PAIRS_PER_STEP = 32    # PD_KT: pairs k per forward step
GRAD_W_PAIRS = 128             # PD_GK: pairs per weight-gradient block
GRAD_PATCHES_ELEMENTS = 32     # PD_RT: reference elements per patch-gradient block
GRAD_PATCHES_PARTNERS = 8      # PD_MC: partner elements per patch-gradient step
KERNELS = ('pd_forward', 'pd_grad_w', 'pd_grad_patches')

_DTYPES = {numpy.dtype(numpy.float32): 'float', numpy.dtype(numpy.float64): 'double'}


def _ceil_div(a, b):
    return -(-a // b)


def tile_factors(n_patches, n_out):
    """(PD_QN, PD_QO): the smallest per-thread tile that covers the problem, at most 4 x 4."""
    return (min(4, _ceil_div(n_patches, PATCH_THREADS)),
            min(4, _ceil_div(n_out, OUTPUT_THREADS)))


def _split(steps, tiles, target_blocks):
    """How many pieces to cut `steps` into so that tiles * pieces is about target_blocks."""
    return max(1, min(steps, _ceil_div(target_blocks, tiles)))


def forward_geometry(n_patches, p, n_out, qn, qo, target_blocks):
    """(grid, k_chunk) of pd_forward: output tiles x patch tiles x pieces of the P*P pairs."""
    tiles_o = _ceil_div(n_out, OUTPUT_THREADS * qo)
    tiles_n = _ceil_div(n_patches, PATCH_THREADS * qn)
    steps = _ceil_div(p * p, FORWARD_PAIRS_PER_STEP)
    k_chunk = FORWARD_PAIRS_PER_STEP * _ceil_div(steps, _split(steps, tiles_o * tiles_n,
                                                                target_blocks))
    return (tiles_o, tiles_n, _ceil_div(p * p, k_chunk)), k_chunk


def grad_w_geometry(n_patches, p, n_out, qo):
    """grid of pd_grad_w: pair tiles x output tiles."""
    return (_ceil_div(p * p, GRAD_W_PAIRS), _ceil_div(n_out, OUTPUT_THREADS * qo), 1)


def grad_patches_geometry(n_patches, p, n_out, qn, target_blocks):
    """(grid, j_chunk) of pd_grad_patches: element tiles x patch tiles x pieces of the partners."""
    tiles_i = _ceil_div(p, GRAD_PATCHES_ELEMENTS)
    tiles_n = _ceil_div(n_patches, PATCH_THREADS * qn)
    steps = _ceil_div(p, GRAD_PATCHES_PARTNERS)
    j_chunk = GRAD_PATCHES_PARTNERS * _ceil_div(steps, _split(steps, tiles_i * tiles_n,
                                                               target_blocks))
    return (tiles_i, tiles_n, _ceil_div(p, j_chunk)), j_chunk


def defines(dtype, qn, qo):
    """The macros pairwise_difference.cu expects, as a dict: element type, tile factors and the
    block shape."""
    return {'PD_REAL': _DTYPES[numpy.dtype(dtype)], 'PD_QN': qn, 'PD_QO': qo,
            'PD_THREADS': THREADS, 'PD_TN': PATCH_THREADS, 'PD_TO': OUTPUT_THREADS,
            'PD_KT': FORWARD_PAIRS_PER_STEP, 'PD_GK': GRAD_W_PAIRS,
            'PD_RT': GRAD_PATCHES_ELEMENTS, 'PD_MC': GRAD_PATCHES_PARTNERS}


def compile_options(dtype):
    """Compiler flags for the kernels of `dtype`."""
    # float: fast exp and division in the sigmoids (about 20% off both gradient kernels on an
    # H100 when measured at 34093df, within the tests' float32 tolerances); double stays exact
    # for gradient checks
    return ('--use_fast_math',) if numpy.dtype(dtype) == numpy.float32 else ()


def kernel_source(dtype, qn, qo):
    """The .cu text with its macros defined in front."""
    with open(SOURCE_PATH) as f:
        body = f.read()
    head = ''.join('#define %s %s\n' % item for item in defines(dtype, qn, qo).items())
    return head + body


def _check(name, a, ndim, dtype=None):
    if a.ndim != ndim:
        raise ValueError('%s must be %d-D, got shape %s' % (name, ndim, a.shape))
    if numpy.dtype(a.dtype) not in _DTYPES:
        raise TypeError('%s must be float32 or float64, got %s' % (name, a.dtype))
    if dtype is not None and a.dtype != dtype:
        raise TypeError('%s has dtype %s but v has %s' % (name, a.dtype, dtype))


def _check_sizes(v, w=None, gy=None):
    n, p = v.shape
    if p * p >= 2 ** 31:
        raise ValueError('patch of %d elements is too large for the kernels (P*P >= 2**31)' % p)
    if n * p >= 2 ** 31 or (gy is not None and gy.size >= 2 ** 31):
        raise ValueError('%d patches are too many for the kernels (N*P or N*O >= 2**31); '
                         'split the batch' % n)
    if w is not None and w.shape[1] != p * p:
        raise ValueError('w must have P*P = %d columns, got %d' % (p * p, w.shape[1]))
    if gy is not None and gy.shape[0] != n:
        raise ValueError('gy must have %d rows (one per patch), got %d' % (n, gy.shape[0]))
    if w is not None and gy is not None and gy.shape[1] != w.shape[0]:
        raise ValueError('gy has %d columns but w has %d outputs' % (gy.shape[1], w.shape[0]))


# --- CuPy launches -------------------------------------------------------------------------

_kernels = {}  # (device id, dtype, qn, qo, name) -> cupy.RawKernel


def _kernel(name, dtype, qn, qo):
    """Kernel `name` of pairwise_difference.cu, compiled once per device, dtype and tile shape."""
    import cupy
    key = (cupy.cuda.Device().id, numpy.dtype(dtype).name, qn, qo, name)
    if key not in _kernels:
        module = cupy.RawModule(code=kernel_source(dtype, qn, qo),
                                options=compile_options(dtype))
        for kernel in KERNELS:
            _kernels[key[:-1] + (kernel,)] = module.get_function(kernel)
    return _kernels[key]


_sm_counts = {}  # device id -> multiprocessors (Device.attributes queries every attribute)


def _target_blocks():
    import cupy
    device = cupy.cuda.Device()
    if device.id not in _sm_counts:
        _sm_counts[device.id] = device.attributes['MultiProcessorCount']
    return 4 * _sm_counts[device.id]


def forward(v, w):
    """y (N, O) = sum over pairs of w[o, i*P + j] * sigmoid(v[n, i] - v[n, j]), on the GPU."""
    import cupy
    _check('v', v, 2)
    _check('w', w, 2, v.dtype)
    _check_sizes(v, w)
    v, w = cupy.ascontiguousarray(v), cupy.ascontiguousarray(w)
    (n, p), o = v.shape, w.shape[0]
    qn, qo = tile_factors(n, o)
    grid, k_chunk = forward_geometry(n, p, o, qn, qo, _target_blocks())
    y = cupy.zeros((n, o), dtype=v.dtype)
    # writes: y[n, o], atomically accumulated over the grid's pieces of the pairs
    _kernel('pd_forward', v.dtype, qn, qo)(
        grid, (THREADS,), (v, w, y, numpy.int32(n), numpy.int32(p), numpy.int32(o),
                           numpy.int32(k_chunk)))
    return y


def grad_w(v, gy):
    """gw (O, P*P) = sum over patches of gy[n, o] * sigmoid(v[n, i] - v[n, j]), on the GPU."""
    import cupy
    _check('v', v, 2)
    _check('gy', gy, 2, v.dtype)
    _check_sizes(v, gy=gy)
    v, gy = cupy.ascontiguousarray(v), cupy.ascontiguousarray(gy)
    (n, p), o = v.shape, gy.shape[1]
    qn, qo = tile_factors(n, o)
    gw = cupy.empty((o, p * p), dtype=v.dtype)
    # writes: every element of gw exactly once
    _kernel('pd_grad_w', v.dtype, qn, qo)(
        grad_w_geometry(n, p, o, qo), (THREADS,),
        (v, gy, gw, numpy.int32(n), numpy.int32(p), numpy.int32(o)))
    return gw


def grad_patches(v, w, gy):
    """gv (N, P): gradient with respect to the patch rows (thesis eq. 3.2), on the GPU."""
    import cupy
    _check('v', v, 2)
    _check('w', w, 2, v.dtype)
    _check('gy', gy, 2, v.dtype)
    _check_sizes(v, w, gy)
    v, w, gy = (cupy.ascontiguousarray(a) for a in (v, w, gy))
    (n, p), o = v.shape, w.shape[0]
    qn, qo = tile_factors(n, o)
    grid, j_chunk = grad_patches_geometry(n, p, o, qn, _target_blocks())
    gv = cupy.zeros((n, p), dtype=v.dtype)
    # writes: gv[n, r], atomically accumulated: + row sums of D for the block's elements r,
    # - column sums of D for the block's partners r
    _kernel('pd_grad_patches', v.dtype, qn, qo)(
        grid, (THREADS,), (v, w, gy, gv, numpy.int32(n), numpy.int32(p), numpy.int32(o),
                           numpy.int32(j_chunk)))
    return gv
