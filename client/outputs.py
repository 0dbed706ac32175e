"""Check what the train and validate entry points wrote, per the seed's SISO contract.

train writes the model at ``OUT`` and JSON at ``OUT-metadata`` with a positive integer
``num_examples`` (aggregators weight updates by it); validate writes a JSON object at ``OUT``.
Shared by ``scaleout run`` and the edge client so both judge an entry point the same way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from scaleout.errors import PackageError

METADATA_SUFFIX = "-metadata"
Stamp = tuple[int, int, int] | None


def stamp(path: Path) -> Stamp:
    """Identity of a file's current content, to tell a file this run wrote from an old one."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def written(path: Path, before: Stamp) -> bool:
    """Whether `path` exists now and is not the file `before` stamped (an entry point wrote it)."""
    current = stamp(path)
    return current is not None and current != before


def metadata_path(model_path: str | os.PathLike[str]) -> Path:
    """Where train writes the metadata of the model at ``model_path`` (``save_metadata``'s naming)."""
    return Path(str(model_path) + METADATA_SUFFIX)


def read_json(path: Path, what: str, fix: str) -> Any:
    """Parse JSON at ``path``; errors say which entry point output it was and how to fix it."""
    if not path.is_file():
        raise PackageError(f"{what} {path} was not written; {fix}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackageError(f"{what} {path} is not valid JSON ({exc}); {fix}") from exc


def read_train_metadata(model_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata train wrote for ``model_path``; must be an object with a positive int ``num_examples``."""
    path = metadata_path(model_path)
    fix = "train must call save_metadata({'num_examples': N, ...}, out_path) with N > 0"
    metadata = read_json(path, "train metadata", fix)
    if not isinstance(metadata, dict):
        raise PackageError(f"train metadata {path} must be a JSON object; {fix}")
    num_examples = metadata.get("num_examples")
    # bool is an int subclass, and True examples is a bug, not a count.
    if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples <= 0:
        raise PackageError(
            f"train metadata {path} has num_examples={num_examples!r}; it must be a positive integer ({fix})"
        )
    return metadata


def read_metrics(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metrics validate wrote at ``path``; must be a JSON object."""
    fix = "validate must call save_metrics({'accuracy': ...}, out_path) with a dict"
    metrics = read_json(Path(path), "validate output", fix)
    if not isinstance(metrics, dict):
        kind = type(metrics).__name__
        raise PackageError(f"validate output {path} must be a JSON object of metrics, not a {kind}; {fix}")
    return metrics
