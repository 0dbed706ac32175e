"""The combiner caps glibc's malloc arenas, so memory its worker threads free is reused (round_bench)."""

import ctypes
import sys

import pytest

from scaleout.combiner.malloc import limit_malloc_arenas


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "gnu_get_libc_version"),
    reason="mallopt(M_ARENA_MAX) is glibc's",
)
def test_arenas_are_capped_on_glibc():
    assert limit_malloc_arenas() is True
