"""Matrix products through BLAS, with the number of BLAS threads chosen per call.

numpy and scipy each bundle an OpenBLAS with its own thread pool (2 threads here). For small
products the threads cost far more than they save, and on a busy 2-core machine a threaded call
waits for a time slice: a 64x64 @ 64x128 float32 product measured 35 ms with 2 threads under
load and 17 us with one. So products below `THREADED_MIN_FLOPS` run single-threaded; larger ones
use every BLAS thread. threadpoolctl finds the libraries once; setting the count is a cheap C call.
"""
from __future__ import annotations

import numpy as np

THREADED_MIN_FLOPS = 1 << 24   # ~ a 256x256x256 product: below it one thread is faster here

try:
    from threadpoolctl import ThreadpoolController
    _blas = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
except Exception:  # threadpoolctl missing or unable to inspect: leave BLAS threading as it is
    _blas = []
_max_threads = max((lib.num_threads for lib in _blas), default=1)
_current = [None]


def set_threads(count: int) -> None:
    if _current[0] != count:
        for lib in _blas:
            lib.set_num_threads(count)
        _current[0] = count


def threads_for(threaded: bool) -> int:
    """The BLAS thread count for products of which the largest is (or not) worth threading."""
    return _max_threads if threaded else 1


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b (batched, broadcast), C-contiguous, with a deliberate BLAS thread count."""
    flops = 2 * a.shape[-2] * a.shape[-1] * b.shape[-1] * (a.size // max(a.shape[-2] * a.shape[-1], 1))
    set_threads(_max_threads if flops >= THREADED_MIN_FLOPS else 1)
    return np.ascontiguousarray(np.matmul(a, b))
