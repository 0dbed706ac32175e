"""Model repository in a local directory: ``root/models/<id>`` and ``root/packages/<id>``.

Writes go to a temp file beside the target, are fsynced, then renamed over it, so a crash never leaves a
partial object under a real id (the statestore commits a model only after its bytes are here, §4).
Temp names contain ``~``, which no valid id does, so they can never be mistaken for an object.
"""

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from scaleout.errors import NotFound
from scaleout.store.repository import CHUNK_SIZE, Kind, ModelRepository, Source, StoredObject, validate_id

_NOUNS: dict[str, str] = {"models": "model", "packages": "package"}


def _noun(kind: str) -> str:
    if kind not in _NOUNS:
        raise ValueError(f"unknown kind {kind!r}: use 'models' or 'packages'")
    return _NOUNS[kind]


def _fsync_directory(directory: Path) -> None:
    """Make a rename in directory durable: without it a power loss may undo a committed put."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, source: BinaryIO) -> int:
    """Copy source to path in CHUNK_SIZE pieces via an fsynced temp file and a rename; return the size."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name[:100]}~", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as target:
            shutil.copyfileobj(source, target, CHUNK_SIZE)
            target.flush()
            os.fsync(target.fileno())
            size = target.tell()
        os.replace(temp_name, path)
    except BaseException:
        os.unlink(temp_name)
        raise
    _fsync_directory(path.parent)
    return size


class FileModelRepository(ModelRepository):
    """Objects as plain files under root; one directory per kind, created on first use."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.uri = f"file://{self.root}"

    def _path(self, kind: Kind, object_id: str) -> Path:
        _noun(kind)
        return self.root / kind / validate_id(object_id)

    def _not_found(self, kind: Kind, object_id: str) -> NotFound:
        return NotFound(f"{_noun(kind)} {object_id!r} not found in {self.uri}")

    def put(self, kind: Kind, object_id: str, source: Source) -> int:
        path = self._path(kind, object_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, str | Path):
            with open(source, "rb") as stream:
                return write_atomically(path, stream)
        return write_atomically(path, source)

    def open(self, kind: Kind, object_id: str) -> BinaryIO:
        path = self._path(kind, object_id)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise self._not_found(kind, object_id) from None

    def get_to_file(self, kind: Kind, object_id: str, path: str | Path) -> int:
        with self.open(kind, object_id) as stream:
            return write_atomically(Path(path), stream)

    def local_path(self, kind: Kind, object_id: str) -> Path:
        path = self._path(kind, object_id)
        if not path.is_file():
            raise self._not_found(kind, object_id)
        return path

    def put_moving(self, kind: Kind, object_id: str, path: Path) -> int:
        """Rename the file in (fsynced first, as write_atomically does); copy it across filesystems."""
        target = self._path(kind, object_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "rb") as stream:
            os.fsync(stream.fileno())
            size = os.fstat(stream.fileno()).st_size
        try:
            os.replace(path, target)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            return super().put_moving(kind, object_id, path)
        _fsync_directory(target.parent)
        return size

    def delete(self, kind: Kind, object_id: str) -> None:
        path = self._path(kind, object_id)
        try:
            path.unlink()
        except FileNotFoundError:
            raise self._not_found(kind, object_id) from None

    def exists(self, kind: Kind, object_id: str) -> bool:
        return self._path(kind, object_id).is_file()

    def size(self, kind: Kind, object_id: str) -> int:
        path = self._path(kind, object_id)
        try:
            return path.stat().st_size
        except FileNotFoundError:
            raise self._not_found(kind, object_id) from None

    def list_objects(self, kind: Kind) -> Iterator[StoredObject]:
        _noun(kind)
        directory = self.root / kind
        if not directory.is_dir():
            return
        with os.scandir(directory) as entries:
            for entry in entries:
                if "~" in entry.name or not entry.is_file():  # a temp file of a write in progress
                    continue
                try:
                    stat = entry.stat()
                except FileNotFoundError:  # deleted while listing
                    continue
                yield StoredObject(kind, entry.name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))
