"""Reading and writing numpyhelper's npz format (uncompressed, keys "0".."n-1") a slice at a time.

Reading is scaleout.model_file's (one model checker for the API and the combiner); this module maps
it onto the combiner's keys and writes aggregates.

The combiner never holds a whole model besides its accumulator: shapes and dtypes come from the npy
headers alone, an update's arrays are read in slices of a few MiB (so checking or folding a 100 MB
update allocates a few MiB, not 100 MB), and the aggregate is written slice by slice, exactly as
``np.savez`` lays it out, so ``numpyhelper.load`` reads it back.
"""

import struct
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib import format as npy

from scaleout.model_file import BLOCK_BYTES, ArraySpec, ModelError, ModelReader, read_header

__all__ = [
    "SLICE_BYTES",
    "ArraySpec",
    "NpzReader",
    "TrustedArrays",
    "array_keys",
    "read_specs",
    "write_member",
    "write_npz",
    "write_npz_slices",
]

SLICE_BYTES = BLOCK_BYTES  # bytes of an array read or written at a time
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # a zip member's local file header (APPNOTE 4.3.7)


def array_keys(count: int) -> list[str]:
    return [str(i) for i in range(count)]


class NpzReader:
    """The arrays of an npz model by parameter index "0".."n-1" (stored as "i" or "arr_i").

    Specs come from the headers alone, values a slice at a time (scaleout.model_file.ModelReader).
    Raises ValueError, naming what is wrong, for a file that is no model.
    """

    def __init__(self, source: str | Path | IO[bytes]) -> None:
        try:
            self._reader = ModelReader(source)
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


class TrustedArrays:
    """Element ranges of an npz model's arrays read straight from the file, skipping zipfile's CRC.

    Only for files whose bytes are already known good (written by this process, or checked when
    uploaded and stored since): a pass over them then costs a read and no checksum, and any range
    can be read, in any order. A compressed or Fortran-order member (np.savez_compressed, a
    transposed array) is read whole through zipfile on first use: rare, and one array of memory.
    Raises ValueError, naming what is wrong, for a file that is no model.
    """

    def __init__(self, path: str | Path) -> None:
        try:
            self._model = ModelReader(path)
            self.specs = self._model.specs()
        except ModelError as error:
            raise ValueError(str(error)) from None
        self._file = open(path, "rb")  # noqa: SIM115 - closed by __exit__, with the reader
        try:
            with zipfile.ZipFile(self._file) as archive:  # leaves the file open: it did not open it
                infos = [archive.getinfo(name) for name in self._model.members]
            self._offsets = [self._data_offset(i, s) for i, s in zip(infos, self.specs, strict=True)]
        except BaseException:
            self.__exit__()
            raise
        self._whole: dict[int, np.ndarray] = {}

    def __enter__(self) -> "TrustedArrays":
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()
        self._model.close()

    def _data_offset(self, info: zipfile.ZipInfo, spec: ArraySpec) -> int | None:
        """Where the member's C-order elements start in the file; None unless stored plainly."""
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        self._file.seek(info.header_offset)
        fields = _LOCAL_HEADER.unpack(self._file.read(_LOCAL_HEADER.size))
        self._file.seek(info.header_offset + _LOCAL_HEADER.size + fields[10] + fields[11])  # name, extra
        _, fortran_order = read_header(self._file)
        return None if fortran_order and len(spec.shape) > 1 else self._file.tell()

    def read(self, index: int, start: int, count: int) -> np.ndarray:
        """Elements ``start`` .. ``start + count`` of array ``index``, flat, in C order."""
        spec, offset = self.specs[index], self._offsets[index]
        if start < 0 or count < 0 or start + count > spec.size:
            raise ValueError(f"array {index} has {spec.size} elements, not {start}..{start + count}")
        if offset is None:
            if index not in self._whole:  # keeps one such array at a time
                self._whole = {index: np.concatenate(list(self._model.blocks(index)))}
            return self._whole[index][start : start + count]
        self._file.seek(offset + start * spec.dtype.itemsize)
        return np.fromfile(self._file, dtype=spec.dtype, count=count)


def read_specs(path: str | Path) -> list[ArraySpec]:
    """Shapes and dtypes of a model's arrays in parameter order, from their headers only."""
    with NpzReader(path) as reader:
        return [reader.spec(key) for key in reader.names()]


def write_npz(path: str | Path, arrays: Iterable[np.ndarray]) -> None:
    """Write arrays as keys "0".."n-1", uncompressed, taking one array at a time from the iterable."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for index, array in enumerate(arrays):
            write_member(archive, index, array)


def write_member(archive: zipfile.ZipFile, key: int, array: np.ndarray) -> None:
    """Write ``array`` as member "<key>.npy" of an uncompressed archive open for writing.

    Readers find arrays by key, not by position in the file, so keys may be written in any order.
    """
    with archive.open(f"{key}.npy", "w", force_zip64=True) as stream:
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
