"""Reading several npz arrays in lockstep, a block of elements at a time.

The files' slices need not line up (a float64 state beside a float32 model is read in slices of
different lengths), so each stream is re-cut to the same block length. Memory is a few blocks per
stream, whatever the model size.
"""

from collections.abc import Iterator, Sequence

import numpy as np

BLOCK = 1 << 18  # elements per block: 2 MiB in float64, a few of them per stream


class Restream:
    """Flat slices from an iterator, handed out ``count`` elements at a time."""

    def __init__(self, slices: Iterator[np.ndarray]) -> None:
        self._slices = slices
        self._pending: list[np.ndarray] = []
        self._held = 0

    def take(self, count: int) -> np.ndarray:
        while self._held < count:
            part = next(self._slices, None)
            if part is None:
                raise ValueError(f"array ended {count - self._held} element(s) early")
            self._pending.append(part.reshape(-1))
            self._held += part.size
        joined = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        block, rest = joined[:count], joined[count:]
        self._pending = [rest] if rest.size else []
        self._held = rest.size
        return block


def lockstep(
    streams: Sequence[Iterator[np.ndarray]], size: int, block: int = BLOCK
) -> Iterator[list[np.ndarray]]:
    """Blocks of ``block`` elements (the last shorter), one per stream, over arrays of ``size`` elements."""
    readers = [Restream(s) for s in streams]
    for start in range(0, size, block):
        count = min(block, size - start)
        yield [r.take(count) for r in readers]


def cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float64 results into the model's dtype; integer parameters round to nearest."""
    if dtype.kind in "iub":
        values = np.rint(values)
    return np.ascontiguousarray(values.astype(dtype, copy=False))
