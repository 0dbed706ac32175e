"""FedBuff's buffer of client deltas (Nguyen et al., "Federated Learning with Buffered Asynchronous
Aggregation", AISTATS 2022), as one combiner holds it between two server steps.

Each client trained from some model version x_b and sent u; its delta u - x_b is folded in with weight
n * s(tau), n its num_examples and s the staleness function of tau, the versions committed since x_b:

    constant:    s(tau) = 1
    polynomial:  s(tau) = (1 + tau) ** -exponent      (the paper's 1 / sqrt(1 + tau) at exponent 0.5)

The buffer's partial model is sum(n s delta) / sum(n): a controller that reduces the partials of its
combiners weighted by their sum(n) gets sum over every update of n s delta / sum(n) exactly.

Streaming, as FedAvg (aggregation/fedavg.py): the delta is computed a block at a time from the update
file and the base version's file, in float64, and folded into a running weighted mean of the deltas
(weights n * s) in the model's own dtype (float32 for a float32 model: one model's worth of memory);
the partial is that mean times sum(n s) / sum(n). No update and no version is held in memory.
"""

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from scaleout.aggregation.blocks import cast
from scaleout.aggregation.fedavg import BLOCK, accumulator_dtype
from scaleout.aggregation.npzfile import SLICE_BYTES, ArraySpec, NpzReader, array_keys, write_npz_slices

CONSTANT = "constant"
POLYNOMIAL = "polynomial"


def staleness_weight(function: str, exponent: float, staleness: int) -> float:
    """s(tau): 1 for "constant", (1 + tau) ** -exponent for "polynomial"."""
    if function == CONSTANT:
        return 1.0
    if function == POLYNOMIAL:
        return float((1.0 + staleness) ** -exponent)
    raise ValueError(f"unknown staleness function {function!r}; use {CONSTANT} or {POLYNOMIAL}")


class DeltaBuffer:
    """Staleness-weighted client deltas folded in as they arrive; ``write`` saves the partial model."""

    def __init__(self, specs: list[ArraySpec]) -> None:
        self.specs = specs
        # np.zeros maps zero pages lazily: an empty buffer costs no memory until its first fold.
        self._mean = [np.zeros(spec.shape, dtype=accumulator_dtype(spec.dtype)) for spec in specs]
        self.weight = 0.0  # sum of n * s
        self.num_examples = 0  # sum of n
        self.count = 0  # updates folded in

    def fold(self, update: str | Path, base: str | Path, num_examples: int, weight: float) -> None:
        """Fold in (update - base) with weight ``num_examples * weight``; both files were checked to
        hold the model's arrays. An exception midway leaves the buffer partly updated: drop it."""
        total = self.weight + num_examples * weight
        share = num_examples * weight / total
        with NpzReader(update) as new, NpzReader(base) as old:
            for key, mean in zip(array_keys(len(self._mean)), self._mean, strict=True):
                _fold_deltas(mean.reshape(-1), new.slices(key), old.slices(key), share)
        self.weight = total
        self.num_examples += num_examples
        self.count += 1

    def write(self, path: str | Path) -> None:
        """Save sum(n s delta) / sum(n) as numpyhelper does, in the model's dtypes, slice by slice."""
        if self.count == 0:
            raise ValueError("no update was folded in: the buffer has no partial model")
        factor = self.weight / self.num_examples
        write_npz_slices(
            path,
            (
                (spec, _scaled(mean.reshape(-1), spec, factor))
                for mean, spec in zip(self._mean, self.specs, strict=True)
            ),
        )


def _fold_deltas(
    flat_mean: np.ndarray, updates: Iterator[np.ndarray], bases: Iterator[np.ndarray], share: float
) -> None:
    """``mean += ((u - x) - mean) * share``, in float64 (complex128), rounded once into the mean.

    A block of BLOCK elements at a time through one reused buffer, as FedAvg folds: the delta is never
    a whole slice in float64. Update and base have the same dtype and shape (checked), so their files
    yield slices of the same sizes.
    """
    work = np.empty(min(BLOCK, flat_mean.size), dtype=np.result_type(flat_mean.dtype, np.float64))
    start = 0
    for u, x in zip(updates, bases, strict=True):
        for offset in range(0, u.size, BLOCK):
            block = work[: min(BLOCK, u.size - offset)]
            mean = flat_mean[start : start + block.size]
            np.subtract(
                u[offset : offset + block.size], x[offset : offset + block.size], out=block, dtype=block.dtype
            )
            block -= mean
            block *= share
            block += mean
            mean[...] = block
            start += block.size
    if start != flat_mean.size:
        raise ValueError(f"update array has {start} elements, the buffer {flat_mean.size}")


def _scaled(flat_mean: np.ndarray, spec: ArraySpec, factor: float) -> Iterator[np.ndarray]:
    per_slice = max(SLICE_BYTES // 16, 1)  # elements of a complex128 slice
    for start in range(0, flat_mean.size, per_slice):
        part = flat_mean[start : start + per_slice]
        yield cast(np.multiply(part, factor, dtype=np.result_type(part.dtype, np.float64)), spec.dtype)
