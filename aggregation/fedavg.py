"""FedAvg: the weighted average of client models by their num_examples (McMahan et al. 2017,
"Communication-Efficient Learning of Deep Networks from Decentralized Data").

Streaming and in place: each update is folded into one accumulator as it arrives and then dropped, so
memory is O(model) whatever the number of clients. The accumulator holds the running weighted mean
(West 1979) rather than the weighted sum:

    total += n;  mean += (x - mean) * (n / total)

computed in float64 a slice at a time and rounded once into the accumulator, whose dtype is the
model's own for float32/float64/complex arrays (float32 for float16, float64 for integers and
bools). So a float32 model costs one float32 accumulator (1x the model, not the 2x of a float64
sum), no division pass is needed at the end, and identical updates average to themselves exactly.
Each fold rounds once, to half an ulp of the mean; an error made at fold j is damped by
total_j / total afterwards, so K folds stay within about (K + 1) / 4 ulp of the exact average
(~1e-7 relative for float32 and a few dozen clients) -- below what float32 parameters resolve.
Folds are serialised by the caller (the round holds a lock), since two must not interleave.
"""

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from scaleout.aggregation.npzfile import SLICE_BYTES, ArraySpec, NpzReader, array_keys, write_npz_slices

BLOCK = 1 << 16  # elements per fold step: a 512 KiB float64 buffer, which stays in the CPU cache


def accumulator_dtype(dtype: np.dtype) -> np.dtype:
    """The running mean's dtype for parameters of ``dtype`` (native byte order)."""
    if dtype.kind == "c":
        return dtype.newbyteorder("=")
    if dtype.kind == "f":
        return np.dtype(np.float32) if dtype.itemsize < 4 else dtype.newbyteorder("=")
    return np.dtype(np.float64)  # integers and bools: exact up to 2**53, rounded to nearest at the end


class FedAvg:
    """A running weighted mean of updates shaped like the global model."""

    def __init__(self, specs: list[ArraySpec]) -> None:
        self.specs = specs
        # np.zeros maps zero pages lazily: building this costs nothing on the event loop, and the
        # first fold (in a worker thread) touches the pages.
        self._acc = [np.zeros(spec.shape, dtype=accumulator_dtype(spec.dtype)) for spec in specs]
        self.total = 0  # sum of num_examples folded in
        self.count = 0  # updates folded in; no update is kept after its fold

    def fold(self, path: str | Path, num_examples: int) -> None:
        """Fold ``update`` in with weight ``num_examples``; the update was checked (updates.check_arrays).

        An exception midway leaves the accumulator partly updated: the caller fails the round.
        """
        with NpzReader(path) as reader:
            self._fold([reader.slices(key) for key in array_keys(len(self._acc))], num_examples)

    def fold_slices(self, arrays: Sequence[Iterable[np.ndarray]], num_examples: int) -> None:
        """``fold`` of an update already read: each array's flat C-order slices (updates.load_checked)."""
        self._fold([iter(parts) for parts in arrays], num_examples)

    def _fold(self, arrays: Sequence[Iterator[np.ndarray]], num_examples: int) -> None:
        total = self.total + num_examples
        weight = num_examples / total  # a Python float: the float64 the slices are computed in
        for parts, acc in zip(arrays, self._acc, strict=True):
            _fold_array(acc.reshape(-1), parts, weight)
        self.total = total
        self.count += 1

    def close(self) -> None:
        """Nothing to release: no update is kept."""
        return None

    def result(self) -> Iterator[np.ndarray]:
        """The average, array by array, in the global model's dtypes."""
        for flat_acc, spec in self._averages():
            yield np.concatenate(list(_cast_slices(flat_acc, spec.dtype))).reshape(spec.shape)

    def write(self, path: str | Path) -> None:
        """Save the average as numpyhelper does (uncompressed npz, keys "0".."n-1"), slice by slice."""
        write_npz_slices(path, ((spec, _cast_slices(acc, spec.dtype)) for acc, spec in self._averages()))

    def _averages(self) -> Iterator[tuple[np.ndarray, ArraySpec]]:
        if self.total <= 0:
            raise ValueError("no update was folded in: there is no average")
        for acc, spec in zip(self._acc, self.specs, strict=True):
            yield acc.reshape(-1), spec


def _fold_array(flat_acc: np.ndarray, parts: Iterator[np.ndarray], weight: float) -> None:
    """``acc += (x - acc) * weight``, computed in float64 (complex128) and rounded once into acc.

    In blocks of BLOCK elements through one reused buffer: the four passes over a block stay in the
    CPU cache, and no temporary is allocated per slice.
    """
    work = np.empty(min(BLOCK, flat_acc.size), dtype=np.result_type(flat_acc.dtype, np.float64))
    start = 0
    for part in parts:
        for offset in range(0, part.size, BLOCK):
            x = part[offset : offset + BLOCK]
            acc = flat_acc[start : start + x.size]
            delta = work[: x.size]
            np.subtract(x, acc, out=delta, dtype=delta.dtype)
            delta *= weight
            delta += acc
            acc[...] = delta  # the one rounding into the accumulator's dtype
            start += x.size
    if start != flat_acc.size:
        raise ValueError(f"update array has {start} elements, the accumulator {flat_acc.size}")


def _cast_slices(flat_acc: np.ndarray, dtype: np.dtype) -> Iterator[np.ndarray]:
    if flat_acc.dtype == dtype:
        yield flat_acc  # the running mean is the average: written as it is, no copy
        return
    per_slice = max(SLICE_BYTES // flat_acc.itemsize, 1)
    for start in range(0, flat_acc.size, per_slice):
        part = flat_acc[start : start + per_slice]
        if dtype.kind in "iub":  # integer parameters (e.g. counters) round to nearest
            part = np.rint(part)
        yield part.astype(dtype)
