"""FedAvg: the weighted average of client models by their num_examples (McMahan et al. 2017,
"Communication-Efficient Learning of Deep Networks from Decentralized Data").

Streaming and in place: each update is folded into one float64 accumulator as it arrives
(``acc[i] += n * x[i]``, ``total += n``) and then dropped, so memory is O(model) whatever the number
of clients: the accumulator plus one update array and a bounded slice of temporaries. The result is
``acc / total`` cast back to the global model's dtypes. Folds are serialised by the caller (the round
holds a lock), since two folds into one accumulator must not interleave.
"""

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from scaleout.combiner.npzfile import ArraySpec, array_keys, write_npz

SLICE = 1 << 20  # elements folded at a time: bounds the float64 temporary of n * x to 8 MiB


class FedAvg:
    """A running weighted sum of updates shaped like the global model."""

    def __init__(self, specs: list[ArraySpec]) -> None:
        self.specs = specs
        self._acc = [np.zeros(spec.shape, dtype=np.float64) for spec in specs]
        self.total = 0  # sum of num_examples folded in
        self.count = 0  # updates folded in; no update is kept after its fold

    def fold(self, path: str | Path, num_examples: int) -> None:
        """Add ``num_examples * update`` to the accumulator; the update was checked (updates.check_arrays)."""
        weight = np.float64(num_examples)
        with np.load(path, allow_pickle=False) as npz:
            for key, acc in zip(array_keys(len(self._acc)), self._acc, strict=True):
                _add_weighted(acc, npz[key], weight)
        self.total += num_examples
        self.count += 1

    def result(self) -> Iterator[np.ndarray]:
        """The average, array by array in the global model's dtypes (one output array alive at a time)."""
        if self.total <= 0:
            raise ValueError("no update was folded in: there is no average")
        for acc, spec in zip(self._acc, self.specs, strict=True):
            average = acc / self.total
            if spec.dtype.kind in "iub":  # integer parameters (e.g. counters) round to nearest
                average = np.rint(average)
            yield average.astype(spec.dtype, copy=False)

    def write(self, path: str | Path) -> None:
        """Save the average as numpyhelper does: uncompressed npz, keys "0".."n-1"."""
        write_npz(path, self.result())


def _add_weighted(acc: np.ndarray, array: np.ndarray, weight: np.float64) -> None:
    """``acc += weight * array`` in float64, a slice at a time so the temporary stays small."""
    flat_acc = acc.reshape(-1)  # acc is C-contiguous: a view
    flat = np.ascontiguousarray(array).reshape(-1)
    for start in range(0, flat.size, SLICE):
        stop = start + SLICE
        flat_acc[start:stop] += flat[start:stop] * weight
