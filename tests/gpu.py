"""Whether a CUDA GPU is usable here (GPU-only tests skip without one)."""


def available():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no CUDA here
        return False


NEEDED = 'needs a CUDA GPU'
