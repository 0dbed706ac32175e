"""One glibc malloc arena for the combiner process, so memory freed after a round goes back to use.

glibc gives each thread that allocates under contention its own arena (up to 8 per core). The
combiner's worker threads (``asyncio.to_thread``: model chunks read for downloads, update slices
checked and folded) allocate MiB-sized buffers that the event loop thread frees; spread over many
arenas, that memory fragments and stays resident. Measured with benchmarks/round_bench.py at 100 MB
and 4 clients: peak RSS 440-480 MB with the default arenas, ~260 MB with one, at the same round
time (the GIL serialises most allocations anyway, so one arena costs no parallelism).
"""

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def limit_malloc_arenas(arenas: int = 1) -> bool:
    """Cap glibc's malloc arenas for this process; False where there is no glibc (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_ARENA_MAX, arenas) != 1:
        log.warning(
            "mallopt(M_ARENA_MAX, %d) failed; memory freed by worker threads may stay resident", arenas
        )
        return False
    return True
