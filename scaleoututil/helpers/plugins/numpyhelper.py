"""Helper for models whose parameters are a list of numpy ndarrays, stored as one npz file.

Saving is uncompressed (``np.savez``): compressed npz runs at ~30 MB/s on float weights for
about 10% less size, which would dominate a round's time for large models. Loading reads both.
"""

import os
import tempfile
from typing import IO

import numpy as np

from scaleoututil.helpers.helperbase import HelperBase

Weights = list[np.ndarray]
SUPPORTED_FILE_TYPES = ("npz", "raw_binary")


class Helper(HelperBase):
    """Parameters as a list of ndarrays; npz keys "0".."n-1" keep their order."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "numpyhelper"

    def increment_average(self, m1: Weights, m2: Weights, n: float, N: float) -> Weights:
        """Running weighted mean: ``m1 + (m2 - m1) * n / N``, where ``N`` already includes ``n``."""
        return [x + (y - x) * n / N for x, y in zip(m1, m2, strict=True)]

    def add(self, m1: Weights, m2: Weights, a: float = 1.0, b: float = 1.0) -> Weights:
        """``m1 * a + m2 * b``, array by array."""
        return [x * a + y * b for x, y in zip(m1, m2, strict=True)]

    def subtract(self, m1: Weights, m2: Weights, a: float = 1.0, b: float = 1.0) -> Weights:
        """``m1 * a - m2 * b``, array by array."""
        return self.add(m1, m2, a, -b)

    def divide(self, m1: Weights, m2: Weights) -> Weights:
        """``m1 / m2``, element-wise."""
        return [np.divide(x, y) for x, y in zip(m1, m2, strict=True)]

    def multiply(self, m1: Weights, m2: Weights) -> Weights:
        """``m1 * m2``, element-wise."""
        return [np.multiply(x, y) for x, y in zip(m1, m2, strict=True)]

    def sqrt(self, m1: Weights) -> Weights:
        """Element-wise square root."""
        return [np.sqrt(x) for x in m1]

    def power(self, m1: Weights, a: float) -> Weights:
        """Element-wise ``m1 ** a``."""
        return [np.power(x, a) for x in m1]

    def norm(self, m: Weights) -> float:
        """Sum over arrays of their L1 norm (of the flattened array)."""
        return float(sum(np.linalg.norm(np.ravel(x), 1) for x in m))

    def sign(self, m: Weights) -> Weights:
        """Element-wise sign."""
        return [np.sign(x) for x in m]

    def ones(self, m1: Weights, a: float) -> Weights:
        """Arrays shaped like ``m1``, filled with ``a``."""
        return [np.ones(np.shape(x)) * a for x in m1]

    def save(self, weights: Weights, path: str | None = None, file_type: str = "npz") -> str:
        """Write ``weights`` to ``path`` (a temporary file when None) and return the path written.

        As with ``np.savez``, a path without ``.npz`` gets it appended; the returned path says so.
        """
        check_supported_file_type(file_type)
        if file_type == "raw_binary":
            path = path or self.get_tmp_path(suffix=".bin")
            np.concatenate([np.ravel(w) for w in weights]).astype(np.float64).tofile(path)
            return str(path)
        path = str(path or self.get_tmp_path())
        np.savez(path, **{str(i): w for i, w in enumerate(weights)})
        return path if path.endswith(".npz") else path + ".npz"

    def load(self, path: str | IO[bytes], file_type: str = "npz") -> Weights:
        """Read weights written by :meth:`save` or ``np.savez(path, *arrays)`` (compressed npz too), in
        numeric key order "0", "1", ... (or "arr_0", "arr_1", ...)."""
        check_supported_file_type(file_type)
        if file_type == "raw_binary":
            if hasattr(path, "read"):
                return [np.frombuffer(path.read(), dtype=np.float64)]
            return [np.fromfile(path, dtype=np.float64)]
        with np.load(path) as npz:
            # Sort numerically: a lexical sort would put "10" before "2".
            return [npz[key] for key in sorted(npz.files, key=_key_index)]

    def get_tmp_path(self, suffix: str = ".npz") -> str:
        """A fresh temporary file path the caller owns (and deletes)."""
        fd, path = tempfile.mkstemp(suffix=suffix)
        os.close(fd)
        return path


def _key_index(key: str) -> int:
    """The parameter index of a key: "3" as save writes it, or "arr_3" as ``np.savez(path, *arrays)`` does."""
    index = key.removeprefix("arr_")
    if not index.isdigit():
        raise ValueError(
            f"npz key '{key}' is not a parameter index; numpyhelper reads keys '0'..'n-1' "
            "(or 'arr_0'..'arr_n-1', as np.savez(path, *arrays) writes)"
        )
    return int(index)


def check_supported_file_type(file_type: str) -> None:
    """Raise ValueError naming the supported types when ``file_type`` is not one of them."""
    if file_type not in SUPPORTED_FILE_TYPES:
        supported = ", ".join(SUPPORTED_FILE_TYPES)
        raise ValueError(f"file type '{file_type}' not supported; use one of {supported}")
