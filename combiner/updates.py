"""Checking a model update before it may be averaged in: its metadata and its arrays.

Each check raises ``UpdateRejected`` with a reason the client and the round record show. Checking the
arrays reads the spooled npz file a slice at a time (npzfile.NpzReader), so a bad update is found
before any of it touches the accumulator: the average stays exact, with nothing to roll back, and
checking a large update allocates a few MiB.
"""

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from scaleout.combiner.npzfile import ArraySpec, NpzReader, array_keys


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
        with NpzReader(path) as reader:
            keys = sorted(reader.names(), key=lambda k: (len(k), k))
            if keys != array_keys(len(specs)):
                raise UpdateRejected(
                    f"update has {len(keys)} array(s) {keys[:5]}, the global model has {len(specs)} "
                    f"(keys '0'..'{len(specs) - 1}')"
                )
            for key, spec in zip(keys, specs, strict=True):
                check_spec(key, reader.spec(key), spec)
            for key, spec in zip(keys, specs, strict=True):
                if spec.dtype.kind in "fc":
                    for part in reader.slices(key):
                        if not np.isfinite(part).all():
                            raise UpdateRejected(f"array {key} contains NaN or inf values")
                else:
                    for _ in reader.slices(key):  # read to the end: checks length and CRC
                        pass
    except UpdateRejected:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise UpdateRejected(f"update is not a readable npz file: {error}") from None


def check_spec(key: str, actual: ArraySpec, spec: ArraySpec) -> None:
    if actual.shape != spec.shape:
        raise UpdateRejected(f"array {key} has shape {actual.shape}, the global model's has {spec.shape}")
    if actual.dtype != spec.dtype:
        raise UpdateRejected(f"array {key} has dtype {actual.dtype}, the global model's has {spec.dtype}")
