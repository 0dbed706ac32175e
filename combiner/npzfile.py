"""Reading and writing numpyhelper's npz format (uncompressed, keys "0".."n-1") one array at a time.

The combiner never holds a whole model besides its accumulator: the global model's shapes and dtypes
come from the npy headers alone, and the aggregate is written array by array, exactly as ``np.savez``
lays it out, so ``numpyhelper.load`` reads it back.
"""

import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npy


@dataclass(frozen=True)
class ArraySpec:
    """What every update's array at this position must match."""

    shape: tuple[int, ...]
    dtype: np.dtype


def array_keys(count: int) -> list[str]:
    return [str(i) for i in range(count)]


def read_specs(path: str | Path) -> list[ArraySpec]:
    """Shapes and dtypes of the arrays "0".."n-1" of an npz file, from their headers only."""
    specs: dict[int, ArraySpec] = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            key = member.removesuffix(".npy")
            if not key.isdigit():
                raise ValueError(f"{path}: npz key '{key}' is not a parameter index '0'..'n-1'")
            with archive.open(member) as stream:
                version = npy.read_magic(stream)
                read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                shape, _fortran_order, dtype = read_header(stream)
            specs[int(key)] = ArraySpec(tuple(shape), np.dtype(dtype))
    if sorted(specs) != list(range(len(specs))):
        raise ValueError(f"{path}: npz keys are not exactly '0'..'{len(specs) - 1}'")
    return [specs[i] for i in range(len(specs))]


def write_npz(path: str | Path, arrays: Iterable[np.ndarray]) -> None:
    """Write arrays as keys "0".."n-1", uncompressed, taking one array at a time from the iterable."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for index, array in enumerate(arrays):
            with archive.open(f"{index}.npy", "w", force_zip64=True) as stream:
                npy.write_array(stream, np.asanyarray(array), allow_pickle=False)
