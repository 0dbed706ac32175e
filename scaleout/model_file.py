"""The model checker: what a numpyhelper model file (an npz) must be, read a block at a time.

One definition for every place that accepts a model: the API (a seed upload), the combiner (client
updates, global models) and ``scaleoututil``'s numpyhelper, so a seed the API accepts is one every
round can average. A model is an npz whose arrays are keyed "0".."n-1" (numpyhelper.save) or
"arr_0".."arr_n-1" (what ``np.savez(path, a, b)`` writes), read in numeric order; each array has a
real numeric or bool dtype, at least one dimension and at least one element.

Everything about size comes from the zip and npy headers before any array is inflated: the zip
directory states each member's uncompressed size (zipfile never inflates past it), the npy header
states the array's shape, and the two must agree, so a small upload that would inflate to gigabytes
is refused having read a few hundred bytes. Values are then read ``BLOCK_BYTES`` at a time, so
checking a model of any size holds one block in memory. A leaf module: it imports nothing of ours
but ``errors``.
"""

import math
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib import format as npy

from scaleout.errors import ScaleoutError

BLOCK_BYTES = 1 << 20  # bytes of an array read at a time
MAX_ARRAYS = 100_000
HOW_TO_SAVE = (
    "save the model with numpyhelper (helper.save(weights, path)) or np.savez(path, *arrays), "
    "uncompressed, one array of numbers per parameter"
)
_KEY = re.compile(r"(arr_)?(0|[1-9][0-9]{0,8})\.npy")


class ModelError(ScaleoutError):
    """A model file that cannot be averaged; the message names the array and the fix."""


@dataclass(frozen=True)
class ArraySpec:
    """An array's shape and dtype, as its npy header states them."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize


def ordered_members(names: list[str]) -> list[str]:
    """The npz member names in parameter order; ModelError unless keyed "0".."n-1" or "arr_0".."arr_n-1"."""
    if not names:
        raise ModelError(f"the model holds no arrays; {HOW_TO_SAVE}")
    if len(names) > MAX_ARRAYS:
        raise ModelError(f"the model holds {len(names)} arrays, more than {MAX_ARRAYS}")
    indexed: dict[int, str] = {}
    prefixes = set()
    for name in names:
        match = _KEY.fullmatch(name)
        if match is None:
            key = name.removesuffix(".npy")
            raise ModelError(
                f"array {key[:80]!r} is not keyed by its position ('0'..'n-1' or 'arr_0'..'arr_n-1'); "
                f"{HOW_TO_SAVE}"
            )
        prefixes.add(match.group(1))
        indexed[int(match.group(2))] = name
    if len(prefixes) > 1 or sorted(indexed) != list(range(len(names))):
        raise ModelError(
            f"the model's keys are not exactly '0'..'{len(names) - 1}' (or 'arr_0'..'arr_{len(names) - 1}'); "
            f"{HOW_TO_SAVE}"
        )
    return [indexed[i] for i in range(len(names))]


def read_header(stream: IO[bytes]) -> tuple[ArraySpec, bool]:
    """The spec and Fortran order of the npy array ``stream`` is positioned at."""
    version = npy.read_magic(stream)
    read = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}.get(version)
    if read is None:
        raise ValueError(f"npy format version {version} is not supported")
    shape, fortran_order, dtype = read(stream)
    return ArraySpec(tuple(int(n) for n in shape), np.dtype(dtype)), fortran_order


def dtype_error(spec: ArraySpec) -> str | None:
    """Why an array of this spec cannot be a model parameter, or None."""
    if spec.dtype.kind not in "biuf" or spec.dtype.hasobject or spec.dtype.names is not None:
        return f"has dtype {spec.dtype}; parameters are real numbers (float, int, uint) or bool"
    if not spec.shape:
        return "is 0-d (a scalar); save it as a 1-d array (np.atleast_1d)"
    if spec.size == 0:
        return f"has shape {spec.shape}, no elements; leave empty arrays out of the model"
    return None


class ModelReader:
    """The arrays of an npz model in parameter order: specs from headers, values a block at a time.

    ``ModelReader(file)`` reads only the zip directory; ``specs()`` reads each member's npy header
    and checks it against the member's stated size (and the total against ``max_bytes``).
    """

    def __init__(self, source: str | Path | IO[bytes], max_bytes: int | None = None) -> None:
        try:
            self._archive = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
            raise ModelError(f"the model is not an npz (zip) file ({error}); {HOW_TO_SAVE}") from None
        try:
            self.members = ordered_members(self._archive.namelist())
            self._check_sizes(max_bytes)
        except BaseException:
            self._archive.close()
            raise

    def __enter__(self) -> "ModelReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self._archive.close()

    def close(self) -> None:
        self._archive.close()

    def _check_sizes(self, max_bytes: int | None) -> None:
        total = sum(self._archive.getinfo(name).file_size for name in self.members)
        if max_bytes is not None and total > max_bytes:
            raise ModelError(
                f"the model's arrays take {total} bytes uncompressed, more than the limit of "
                f"{max_bytes} bytes"
            )

    def spec(self, index: int) -> ArraySpec:
        """Array ``index``'s spec, from its header; ModelError if the member's size disagrees with it."""
        name = self.members[index]
        with self._archive.open(name) as stream:
            spec, _ = read_header(stream)
            self._check_member_size(index, spec, stream.tell())
        return spec

    def specs(self) -> list[ArraySpec]:
        return [self.spec(i) for i in range(len(self.members))]

    def _check_member_size(self, index: int, spec: ArraySpec, header_bytes: int) -> None:
        stated = self._archive.getinfo(self.members[index]).file_size
        if header_bytes + spec.nbytes != stated:
            raise ModelError(
                f"array {index} is truncated or padded: shape {spec.shape} ({spec.dtype}) is "
                f"{spec.nbytes} bytes, its npz member holds {stated - header_bytes}; the file is corrupt"
            )

    def blocks(self, index: int) -> Iterator[np.ndarray]:
        """Array ``index``'s elements in C order, as flat read-only arrays of at most BLOCK_BYTES each.

        Raises ValueError if the member holds fewer bytes than its header promises, and zipfile's
        BadZipFile if its CRC does not match (checked on reading the last byte).
        """
        with self._archive.open(self.members[index]) as stream:
            spec, fortran_order = read_header(stream)
            self._check_member_size(index, spec, stream.tell())
            if spec.dtype.hasobject:
                raise ValueError(f"array {index} holds Python objects (dtype {spec.dtype}), not numbers")
            if fortran_order and len(spec.shape) > 1:
                yield from _fortran_blocks(stream, spec, index)
                return
            per_block = max(BLOCK_BYTES // max(spec.dtype.itemsize, 1), 1)
            remaining = spec.size
            while remaining > 0:
                count = min(per_block, remaining)
                yield _read_exactly(stream, spec, count, index)
                remaining -= count
            stream.read(1)  # at the end: makes zipfile check the CRC


def _read_exactly(stream: IO[bytes], spec: ArraySpec, count: int, index: int) -> np.ndarray:
    data = stream.read(count * spec.dtype.itemsize)
    if len(data) != count * spec.dtype.itemsize:
        raise ValueError(f"array {index} is truncated: its header says shape {spec.shape}")
    return np.frombuffer(data, dtype=spec.dtype)


def _fortran_blocks(stream: IO[bytes], spec: ArraySpec, index: int) -> Iterator[np.ndarray]:
    # Rare (np.save of a transposed array): the file's order is not C order. Read it whole.
    transposed = _read_exactly(stream, spec, spec.size, index).reshape(spec.shape[::-1])
    whole = np.ascontiguousarray(transposed.T).reshape(-1)
    per_block = max(BLOCK_BYTES // max(spec.dtype.itemsize, 1), 1)
    for start in range(0, whole.size, per_block):
        yield whole[start : start + per_block]


def check_model(source: str | Path | IO[bytes], max_bytes: int) -> list[ArraySpec]:
    """Check a whole model file and return its specs; ModelError names the first array that is wrong.

    Sizes are checked from the headers first; then each array is read a block at a time and must
    be finite.
    """
    with ModelReader(source, max_bytes) as reader:
        try:
            specs = reader.specs()
            for index, spec in enumerate(specs):
                if error := dtype_error(spec):
                    raise ModelError(f"array {index} {error}; {HOW_TO_SAVE}")
            for index, spec in enumerate(specs):
                for block in reader.blocks(index):
                    if spec.dtype.kind == "f" and not np.isfinite(block).all():
                        raise ModelError(f"array {index} contains NaN or inf values")
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
            raise ModelError(f"the model is not a readable npz file ({error}); {HOW_TO_SAVE}") from None
    return specs
