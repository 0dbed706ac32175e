"""The model repository interface: streamed bytes of models and compute packages.

Objects are keyed by validated ids and never held whole in memory: ``put`` reads its source in
chunks, ``open`` returns a stream. Open one with ``scaleout.store.open_model_repository(uri)``.
"""

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Literal

from scaleout.errors import InvalidId

CHUNK_SIZE = 4 * 1024 * 1024
Kind = Literal["models", "packages"]
Source = str | Path | BinaryIO

_VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,200}")


def validate_id(object_id: str) -> str:
    """Return the id if it is safe as a file name and an object key; raise InvalidId otherwise."""
    if not isinstance(object_id, str) or not _VALID_ID.fullmatch(object_id) or object_id in {".", ".."}:
        raise InvalidId(
            f"invalid id {object_id!r}: use 1-200 characters from A-Z a-z 0-9 . _ - (no '/' or '..')"
        )
    return object_id


@dataclass(frozen=True)
class StoredObject:
    """One object of the repository as listed: its id, size in bytes and last modification (UTC)."""

    kind: Kind
    id: str
    size: int
    modified: datetime


class ModelRepository(ABC):
    """Model and package bytes. Subclasses implement the primitives per kind of object."""

    @abstractmethod
    def put(self, kind: Kind, object_id: str, source: Source) -> int:
        """Store the object from a path or a readable binary stream of unknown length; return its size."""

    @abstractmethod
    def open(self, kind: Kind, object_id: str) -> BinaryIO:
        """A readable stream of the object (close it after use); NotFound if missing."""

    @abstractmethod
    def get_to_file(self, kind: Kind, object_id: str, path: str | Path) -> int:
        """Write the object to path (atomically) and return its size; NotFound if missing."""

    @abstractmethod
    def delete(self, kind: Kind, object_id: str) -> None:
        """Remove the object; NotFound if missing."""

    @abstractmethod
    def exists(self, kind: Kind, object_id: str) -> bool:
        """Whether the object is stored."""

    @abstractmethod
    def size(self, kind: Kind, object_id: str) -> int:
        """The object's size in bytes; NotFound if missing."""

    @abstractmethod
    def list_objects(self, kind: Kind) -> Iterator[StoredObject]:
        """Every stored object of this kind, in no particular order (paged: never all in memory);
        objects still being written are not listed."""

    def local_path(self, kind: Kind, object_id: str) -> Path | None:
        """The object's file when it is on this machine, to read in place instead of copying it;
        None when the repository is remote. Do not modify or remove the file."""
        return None

    def put_moving(self, kind: Kind, object_id: str, path: Path) -> int:
        """Store the file at ``path``, which the caller gives up; return its size.

        A local repository moves it in (no copy of the bytes); others upload it, then delete it.
        """
        size = self.put(kind, object_id, path)
        path.unlink()
        return size

    # The named operations the rest of the system calls.
    def put_model(self, model_id: str, source: Source) -> int:
        return self.put("models", model_id, source)

    def open_model(self, model_id: str) -> BinaryIO:
        return self.open("models", model_id)

    def get_model_to_file(self, model_id: str, path: str | Path) -> int:
        return self.get_to_file("models", model_id, path)

    def model_path(self, model_id: str) -> Path | None:
        return self.local_path("models", model_id)

    def put_model_moving(self, model_id: str, path: Path) -> int:
        return self.put_moving("models", model_id, path)

    def delete_model(self, model_id: str) -> None:
        self.delete("models", model_id)

    def model_exists(self, model_id: str) -> bool:
        return self.exists("models", model_id)

    def model_size(self, model_id: str) -> int:
        return self.size("models", model_id)

    def put_package(self, package_id: str, source: Source) -> int:
        return self.put("packages", package_id, source)

    def open_package(self, package_id: str) -> BinaryIO:
        return self.open("packages", package_id)

    def get_package_to_file(self, package_id: str, path: str | Path) -> int:
        return self.get_to_file("packages", package_id, path)

    def delete_package(self, package_id: str) -> None:
        self.delete("packages", package_id)

    def package_exists(self, package_id: str) -> bool:
        return self.exists("packages", package_id)

    def package_size(self, package_id: str) -> int:
        return self.size("packages", package_id)
