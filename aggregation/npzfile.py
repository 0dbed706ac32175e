"""Reading and writing numpyhelper's npz format (uncompressed, keys "0".."n-1") a slice at a time.

Reading is scaleout.model_file's (one model checker for the API and the combiner); this module maps
it onto the combiner's keys and writes aggregates.

The combiner never holds a whole model besides its accumulator: shapes and dtypes come from the npy
headers alone, an update's arrays are read in slices of a few MiB (so checking or folding a 100 MB
update allocates a few MiB, not 100 MB), and the aggregate is written slice by slice, exactly as
``np.savez`` lays it out, so ``numpyhelper.load`` reads it back.
"""

import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

from scaleout.model_file import BLOCK_BYTES, ArraySpec, ModelError, ModelReader

__all__ = [
    "SLICE_BYTES",
    "ArraySpec",
    "NpzReader",
    "array_keys",
    "read_specs",
    "write_npz",
    "write_npz_slices",
]

SLICE_BYTES = BLOCK_BYTES  # bytes of an array read or written at a time


def array_keys(count: int) -> list[str]:
    return [str(i) for i in range(count)]


class NpzReader:
    """The arrays of an npz model by parameter index "0".."n-1" (stored as "i" or "arr_i").

    Specs come from the headers alone, values a slice at a time (scaleout.model_file.ModelReader).
    Raises ValueError, naming what is wrong, for a file that is no model.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = path
        try:
            self._reader = ModelReader(path)
        except ModelError as error:
            raise ValueError(str(error)) from None

    def __enter__(self) -> "NpzReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.close()

    def names(self) -> list[str]:
        """Parameter indices as strings, in order."""
        return array_keys(len(self._reader.members))

    def spec(self, key: str) -> ArraySpec:
        try:
            return self._reader.spec(int(key))
        except ModelError as error:
            raise ValueError(str(error)) from None

    def slices(self, key: str) -> Iterator[np.ndarray]:
        """Array ``key``'s elements in C order, as flat read-only arrays of at most SLICE_BYTES each.

        Raises ValueError if the member holds fewer bytes than its header promises, and zipfile's
        BadZipFile if its CRC does not match.
        """
        try:
            yield from self._reader.blocks(int(key))
        except ModelError as error:
            raise ValueError(str(error)) from None


def read_specs(path: str | Path) -> list[ArraySpec]:
    """Shapes and dtypes of a model's arrays in parameter order, from their headers only."""
    with NpzReader(path) as reader:
        return [reader.spec(key) for key in reader.names()]


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
