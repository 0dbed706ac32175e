"""Checking a model update before it may be averaged in: its metadata and its arrays.

Each check raises ``UpdateRejected`` with a reason the client and the round record show. Checking the
arrays reads them one at a time (``np.load`` on the spooled npz file), so a bad update is found before
any of it touches the accumulator: the average stays exact, with nothing to roll back.
"""

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from scaleout.combiner.npzfile import ArraySpec, array_keys

SLICE = 1 << 22  # elements checked for NaN/inf at a time: bounds the temporary boolean array


class UpdateRejected(Exception):
    """An update that must not be averaged in; str() is the reason."""


def parse_meta(meta: str) -> tuple[dict[str, Any], int]:
    """The update's metadata object and its num_examples: a positive int (not bool, not 3.0)."""
    try:
        value = json.loads(meta) if meta else None
    except ValueError as error:
        raise UpdateRejected(
            f"meta is not JSON ({error}); send the train entry point's OUT-metadata"
        ) from None
    if not isinstance(value, dict):
        raise UpdateRejected("meta is not a JSON object; send the train entry point's OUT-metadata")
    if "num_examples" not in value:
        raise UpdateRejected("meta has no num_examples; the train entry point must save it in OUT-metadata")
    count = value["num_examples"]
    if isinstance(count, bool) or not isinstance(count, int):
        raise UpdateRejected(f"num_examples must be an integer, got {count!r} ({type(count).__name__})")
    if count <= 0:
        raise UpdateRejected(f"num_examples must be > 0, got {count}")
    return value, count


def check_arrays(path: str | Path, specs: list[ArraySpec]) -> None:
    """The update holds exactly the global model's arrays (count, shape, dtype), all finite."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = sorted(npz.files, key=lambda k: (len(k), k))
            if keys != array_keys(len(specs)):
                raise UpdateRejected(
                    f"update has {len(keys)} array(s) {keys[:5]}, the global model has {len(specs)} "
                    f"(keys '0'..'{len(specs) - 1}')"
                )
            for key, spec in zip(keys, specs, strict=True):
                check_array(key, npz[key], spec)
    except UpdateRejected:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise UpdateRejected(f"update is not a readable npz file: {error}") from None


def check_array(key: str, array: np.ndarray, spec: ArraySpec) -> None:
    if array.shape != spec.shape:
        raise UpdateRejected(f"array {key} has shape {array.shape}, the global model's has {spec.shape}")
    if array.dtype != spec.dtype:
        raise UpdateRejected(f"array {key} has dtype {array.dtype}, the global model's has {spec.dtype}")
    if array.dtype.kind in "fc":
        flat = array.reshape(-1)
        for start in range(0, flat.size, SLICE):
            if not np.isfinite(flat[start : start + SLICE]).all():
                raise UpdateRejected(f"array {key} contains NaN or inf values")
