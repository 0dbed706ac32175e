"""Checking a model update before it may be averaged in: its metadata and its arrays.

Each check raises ``UpdateRejected`` with a reason the client and the round record show. Checking the
arrays reads the spooled npz file a slice at a time (npzfile.NpzReader), so a bad update is found
before any of it touches the accumulator: the average stays exact, with nothing to roll back, and
checking a large update allocates a few MiB.
"""

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from scaleout.aggregation.npzfile import ArraySpec, NpzReader
from scaleout.round_rules import short

ACCEPTED = "accepted"  # SendModelUpdate's answer to an update folded in


class UpdateRejected(Exception):
    """An update that must not be averaged in; str() is the reason."""


def rejected(reason: str) -> str:
    """SendModelUpdate's answer to an update refused."""
    return f"rejected: {reason}"


# The fold computes ``acc + (x - acc) * w`` in float64; values within half of float64's range keep
# ``x - acc`` finite, so a finite update can never turn the average into inf.
MAX_ABS_VALUE = float(np.finfo(np.float64).max) / 2


def parse_meta(meta: str, max_examples: int) -> tuple[dict[str, Any], int]:
    """The update's metadata object and its num_examples: an int (not bool, not 3.0) in 1..max_examples.

    The bound keeps one client from taking all the weight of an average, and keeps totals within the
    uint64 fields of ClientResult and RoundResult.
    """
    try:
        value = json.loads(meta) if meta else None
    except ValueError as error:
        raise UpdateRejected(
            f"meta is not JSON ({error}); send the train entry point's OUT-metadata"
        ) from None
    if not isinstance(value, dict):
        raise UpdateRejected("meta is not a JSON object; send the train entry point's OUT-metadata")
    count = _num_examples(value)
    if isinstance(count, bool) or not isinstance(count, int):
        raise UpdateRejected(f"num_examples must be an integer, got {short(count)} ({type(count).__name__})")
    if count <= 0:
        raise UpdateRejected(f"num_examples must be > 0, got {short(count)}")
    if count > max_examples:
        raise UpdateRejected(
            f"num_examples {short(count)} is above the combiner's maximum of {max_examples} per update "
            "(--max-num-examples)"
        )
    return value, count


def _num_examples(meta: dict[str, Any]) -> Any:
    """num_examples at the top (our clients) or under training_metadata (the official client)."""
    if "num_examples" in meta:
        return meta["num_examples"]
    nested = meta.get("training_metadata")
    if isinstance(nested, dict) and "num_examples" in nested:
        return nested["num_examples"]
    raise UpdateRejected(
        "meta has no num_examples (nor training_metadata.num_examples); the train entry point must "
        "save it in OUT-metadata"
    )


def check_arrays(path: str | Path, specs: list[ArraySpec]) -> None:
    """The update holds exactly the global model's arrays (count, shape, dtype), all finite.

    Values beyond MAX_ABS_VALUE are refused too: averaged in, they could overflow to inf.
    """
    for _ in _checked_slices(path, specs):
        pass


def load_checked(source: str | Path | IO[bytes], specs: list[ArraySpec]) -> list[list[np.ndarray]]:
    """check_arrays, keeping what it read: each array's slices, for a fold without a second read.

    For updates small enough to hold (the round handler's IN_MEMORY_BYTES): the file is opened, parsed
    and checksummed once instead of twice.
    """
    arrays: list[list[np.ndarray]] = [[] for _ in specs]
    for index, part in _checked_slices(source, specs):
        arrays[index].append(part)
    return arrays


def _checked_slices(
    source: str | Path | IO[bytes], specs: list[ArraySpec]
) -> Iterator[tuple[int, np.ndarray]]:
    """The update's slices (array index, slice) as they pass the checks; UpdateRejected at the first
    that does not (its CRC is checked on reading an array's last slice)."""
    try:
        with NpzReader(source) as reader:
            keys = reader.names()
            if len(keys) != len(specs):
                raise UpdateRejected(
                    f"update has {len(keys)} array(s), the global model has {len(specs)} "
                    f"(keys '0'..'{len(specs) - 1}')"
                )
            for key, spec in zip(keys, specs, strict=True):
                check_spec(key, reader.spec(key), spec)
            for index, (key, spec) in enumerate(zip(keys, specs, strict=True)):
                for part in reader.slices(key):
                    if spec.dtype.kind in "fc":
                        _check_values(key, part)
                    yield index, part
    except UpdateRejected:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise UpdateRejected(f"update is not a readable npz file: {error}") from None


def _check_values(key: str, part: np.ndarray) -> None:
    if not np.isfinite(part).all():
        raise UpdateRejected(f"array {key} contains NaN or inf values")
    if float(np.finfo(part.dtype).max) <= MAX_ABS_VALUE:
        return  # float32 and smaller: the float64 fold cannot overflow
    largest = float(np.abs(part).max(initial=0))
    if largest > MAX_ABS_VALUE:
        raise UpdateRejected(
            f"array {key} holds a value of magnitude {largest:.3g}; above {MAX_ABS_VALUE:.3g} "
            "averaging it could overflow to inf"
        )


def check_spec(key: str, actual: ArraySpec, spec: ArraySpec) -> None:
    if actual.shape != spec.shape:
        raise UpdateRejected(f"array {key} has shape {actual.shape}, the global model's has {spec.shape}")
    if actual.dtype != spec.dtype:
        raise UpdateRejected(f"array {key} has dtype {actual.dtype}, the global model's has {spec.dtype}")
