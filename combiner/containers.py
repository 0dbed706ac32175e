"""The official client's update container: a ZIP of ``metadata.json`` and ``training_model.bin``.

The official Scaleout Edge client (scaleoututil 1.1.0, ``ScaleoutModel``) uploads every update as a
ZIP archive holding ``metadata.json`` (model id, helper type, format version) and the weights as
``training_model.bin`` — for the numpy helper an npz file, our update format. An npz is a ZIP too; what
tells them apart is ``metadata.json`` (the official client's own rule, ``detect_format``). A container
is unwrapped as soon as it is spooled: ``training_model.bin`` replaces the upload, so everything after
(array checks, norm bounds, the fold) sees the npz our clients send. Models go the other way as plain
npz files, which the official client reads as its "legacy" format: nothing to convert.

Both entries are bounded before they are inflated: ``training_model.bin`` by the combiner's
``--max-model-size`` (checked again while copying, as a ZIP header can lie), ``metadata.json`` by
``MAX_METADATA_BYTES``.
"""

import json
import os
import zipfile
from pathlib import Path
from typing import IO

METADATA_ENTRY = "metadata.json"
TRAINING_MODEL_ENTRY = "training_model.bin"
MAX_METADATA_BYTES = 1024 * 1024
COPY_CHUNK = 1024 * 1024


class ContainerRejected(Exception):
    """A ZIP container that cannot be an update; str() names what is wrong and the fix."""


def is_container(source: Path | IO[bytes]) -> bool:
    """Whether the update is the official client's ZIP container (a ZIP holding metadata.json)."""
    try:
        with zipfile.ZipFile(source) as archive:
            return METADATA_ENTRY in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def unwrap(path: Path, max_size: int) -> dict:
    """Replace the container at ``path`` by its training_model.bin; return its metadata.json object."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if TRAINING_MODEL_ENTRY not in names:
                raise ContainerRejected(
                    f"the update is a ZIP container ({METADATA_ENTRY}) without {TRAINING_MODEL_ENTRY} "
                    f"(entries: {', '.join(sorted(names))[:300]}); the weights must be in "
                    f"{TRAINING_MODEL_ENTRY}, as ScaleoutModel.from_training_model writes them"
                )
            metadata = _metadata(archive)
            _extract(archive, archive.getinfo(TRAINING_MODEL_ENTRY), path, max_size)
    except zipfile.BadZipFile as error:
        raise ContainerRejected(f"the update's ZIP container is damaged: {error}") from None
    return metadata


def _metadata(archive: zipfile.ZipFile) -> dict:
    info = archive.getinfo(METADATA_ENTRY)
    if info.file_size > MAX_METADATA_BYTES:
        raise ContainerRejected(
            f"{METADATA_ENTRY} of the update's ZIP container is {info.file_size} bytes; "
            f"at most {MAX_METADATA_BYTES}"
        )
    try:
        value = json.loads(archive.read(info)[: MAX_METADATA_BYTES + 1])
    except ValueError as error:
        raise ContainerRejected(
            f"{METADATA_ENTRY} of the update's ZIP container is not JSON: {error}"
        ) from None
    if not isinstance(value, dict):
        raise ContainerRejected(f"{METADATA_ENTRY} of the update's ZIP container is not a JSON object")
    return value


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, max_size: int) -> None:
    too_large = (
        f"{TRAINING_MODEL_ENTRY} of the update's ZIP container is larger than the combiner's "
        f"--max-model-size of {max_size} bytes"
    )
    if info.file_size > max_size:
        raise ContainerRejected(too_large)
    partial = path.with_name(path.name + ".unzipping")
    try:
        with archive.open(info) as source, open(partial, "wb") as target:
            copied = 0
            while chunk := source.read(COPY_CHUNK):
                copied += len(chunk)
                if copied > max_size:
                    raise ContainerRejected(too_large)
                target.write(chunk)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
