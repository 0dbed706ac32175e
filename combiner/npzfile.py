"""Reading and writing numpyhelper's npz format (uncompressed, keys "0".."n-1") a slice at a time.

The combiner never holds a whole model besides its accumulator: shapes and dtypes come from the npy
headers alone, an update's arrays are read in slices of a few MiB (so checking or folding a 100 MB
update allocates a few MiB, not 100 MB), and the aggregate is written slice by slice, exactly as
``np.savez`` lays it out, so ``numpyhelper.load`` reads it back.
"""

import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib import format as npy

SLICE_BYTES = 1 << 20  # bytes of an array read or written at a time


@dataclass(frozen=True)
class ArraySpec:
    """What every update's array at this position must match."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def array_keys(count: int) -> list[str]:
    return [str(i) for i in range(count)]


def _read_header(stream: IO[bytes]) -> tuple[ArraySpec, bool]:
    version = npy.read_magic(stream)
    read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    shape, fortran_order, dtype = read_header(stream)
    return ArraySpec(tuple(shape), np.dtype(dtype)), fortran_order


class NpzReader:
    """The arrays of an npz file: their specs from the headers, their values a slice at a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._archive = zipfile.ZipFile(path)

    def __enter__(self) -> "NpzReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self._archive.close()

    def names(self) -> list[str]:
        """Member names without ".npy", in archive order."""
        return [member.removesuffix(".npy") for member in self._archive.namelist()]

    def spec(self, key: str) -> ArraySpec:
        with self._archive.open(f"{key}.npy") as stream:
            return _read_header(stream)[0]

    def slices(self, key: str) -> Iterator[np.ndarray]:
        """The array's elements in C order, as flat read-only arrays of at most SLICE_BYTES each.

        Raises ValueError if the member holds fewer bytes than its header promises, and zipfile's
        BadZipFile if its CRC does not match.
        """
        with self._archive.open(f"{key}.npy") as stream:
            spec, fortran_order = _read_header(stream)
            if spec.dtype.hasobject:
                raise ValueError(f"array {key} holds Python objects (dtype {spec.dtype}), not numbers")
            itemsize = spec.dtype.itemsize
            per_slice = max(SLICE_BYTES // max(itemsize, 1), 1)
            if fortran_order and len(spec.shape) > 1:
                # Rare (np.save of a transposed array): the file's order is not C order. Read it whole.
                data = stream.read(spec.size * itemsize)
                if len(data) != spec.size * itemsize:
                    raise ValueError(f"array {key} is truncated: its header says shape {spec.shape}")
                transposed = np.frombuffer(data, dtype=spec.dtype).reshape(spec.shape[::-1])
                whole = np.ascontiguousarray(transposed.T).reshape(-1)
                for start in range(0, whole.size, per_slice):
                    yield whole[start : start + per_slice]
                return
            remaining = spec.size
            while remaining > 0:
                count = min(per_slice, remaining)
                data = stream.read(count * itemsize)
                if len(data) != count * itemsize:
                    raise ValueError(f"array {key} is truncated: its header says shape {spec.shape}")
                yield np.frombuffer(data, dtype=spec.dtype)
                remaining -= count


def read_specs(path: str | Path) -> list[ArraySpec]:
    """Shapes and dtypes of the arrays "0".."n-1" of an npz file, from their headers only."""
    specs: dict[int, ArraySpec] = {}
    with NpzReader(path) as reader:
        for key in reader.names():
            if not key.isdigit():
                raise ValueError(f"{path}: npz key '{key}' is not a parameter index '0'..'n-1'")
            specs[int(key)] = reader.spec(key)
    if sorted(specs) != list(range(len(specs))):
        raise ValueError(f"{path}: npz keys are not exactly '0'..'{len(specs) - 1}'")
    return [specs[i] for i in range(len(specs))]


def write_npz(path: str | Path, arrays: Iterable[np.ndarray]) -> None:
    """Write arrays as keys "0".."n-1", uncompressed, taking one array at a time from the iterable."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for index, array in enumerate(arrays):
            with archive.open(f"{index}.npy", "w", force_zip64=True) as stream:
                npy.write_array(stream, np.asanyarray(array), allow_pickle=False)


def write_npz_slices(path: str | Path, arrays: Iterable[tuple[ArraySpec, Iterable[np.ndarray]]]) -> None:
    """Write arrays given as (spec, flat C-order slices in spec.dtype) as keys "0".."n-1", uncompressed.

    The bytes are those ``np.savez`` writes for the whole arrays; no array is ever whole in memory.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for index, (spec, slices) in enumerate(arrays):
            with archive.open(f"{index}.npy", "w", force_zip64=True) as stream:
                header = {
                    "descr": npy.dtype_to_descr(spec.dtype),
                    "fortran_order": False,
                    "shape": spec.shape,
                }
                try:
                    npy.write_array_header_1_0(stream, header)
                except ValueError:  # a header over 64 KiB (a huge structured dtype) needs version 2.0
                    npy.write_array_header_2_0(stream, header)
                written = 0
                for part in slices:
                    if part.dtype != spec.dtype or not part.flags.c_contiguous:
                        raise ValueError(f"array {index}: slices must be contiguous {spec.dtype}")
                    stream.write(memoryview(part.reshape(-1).view(np.uint8)))
                    written += part.size
                if written != spec.size:
                    raise ValueError(f"array {index}: {written} elements written, shape {spec.shape}")
