"""Batch work split over threads, for numba kernels that release the GIL (`nogil=True`)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from itertools import count

import numpy as np

CHUNKS_PER_THREAD = 4  # batch chunks per thread: enough to even out the load


@cache
def _pool(workers: int) -> ThreadPoolExecutor:
    """One long-lived pool per size: starting threads per call would cost more than small batches."""
    return ThreadPoolExecutor(workers, thread_name_prefix="batch")


def over_threads(length: int, threads: int, run: Callable[[int, int], None]) -> None:
    """Call `run(lo, hi)` on chunks that cover range(length), on `threads` threads at once
    (the calling thread is one of them); returns when every chunk is done."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    if threads == 1:
        if length:
            run(0, length)
        return
    # small chunks handed out on demand, so a thread that drew cheap items takes more;
    # the calling thread works through them too rather than wait idle
    chunks = min(length, CHUNKS_PER_THREAD * threads)
    bounds = np.linspace(0, length, chunks + 1).astype(int)
    taken = count()

    def drain() -> None:
        while (i := next(taken)) < len(bounds) - 1:  # next() on a count is atomic under the GIL
            run(bounds[i], bounds[i + 1])

    others = [_pool(threads - 1).submit(drain) for _ in range(threads - 1)]
    drain()
    for other in others:
        other.result()
