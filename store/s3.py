"""Model repository on S3 / MinIO through the ``minio`` client.

One bucket holds both kinds under the prefixes ``models/`` and ``packages/`` (one bucket to provision and
grant; the prefixes keep the namespaces apart). The bucket is created if missing.

Memory stays bounded by the part size: streams of unknown length go up as a multipart upload read one
part at a time (``put_object(length=-1)``), and reads stream the HTTP response in chunks. An object
appears only when its upload completes, and a failed multipart upload is aborted, so a crash never
leaves a partial model under a real id.
"""

import io
import os
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import BinaryIO

from minio import Minio
from minio.error import S3Error
from urllib3 import BaseHTTPResponse

from scaleout.errors import NotFound
from scaleout.store.filesystem import write_atomically
from scaleout.store.repository import Kind, ModelRepository, Source, StoredObject, validate_id

# A put holds about (PARALLEL_UPLOADS + 3) * PART_SIZE: the parts in flight, the one being read, and
# minio's copies of it. Measured with a 300 MB put against moto on loopback (tests/store/
# large_object_probe.py, peak RSS growth): 8 MiB x 1 -> +33 MB at ~66 MB/s; 8 MiB x 2 -> +45 MB at
# 58-100 MB/s; 16 MiB x 2 -> +87 MB at ~105 MB/s; 32 MiB x 2 -> +184 MB at ~95 MB/s. The server is the
# bottleneck and the combiner's RSS budget (§5) is tight, so 8 MiB x 2; 8 MiB x 10,000 parts (the S3
# limit) still allows 80 GiB objects.
PART_SIZE = 8 * 1024 * 1024
PARALLEL_UPLOADS = 2

_NOUNS: dict[str, str] = {"models": "model", "packages": "package"}


def _noun(kind: str) -> str:
    if kind not in _NOUNS:
        raise ValueError(f"unknown kind {kind!r}: use 'models' or 'packages'")
    return _NOUNS[kind]


class _FullReads(io.RawIOBase):
    """Make read(n) return n bytes unless at end of stream.

    minio assembles a part by concatenating read() results, which is quadratic for sources that return
    small pieces (sockets, generators); one full read per part keeps it to a single copy.
    """

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            data = self._source.read()
            self.count += len(data)
            return data
        pieces: list[bytes] = []
        remaining = size
        while remaining:
            piece = self._source.read(remaining)
            if not piece:
                break
            pieces.append(piece)
            remaining -= len(piece)
        self.count += size - remaining
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class _ObjectStream(io.RawIOBase):
    """The body of a GET as a readable stream; closing it returns the connection to the pool."""

    def __init__(self, response: BaseHTTPResponse) -> None:
        self._response = response

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._response.read(None if size is None or size < 0 else size)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        return self._response.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            try:
                self._response.close()
                self._response.release_conn()
            finally:
                super().close()


class S3ModelRepository(ModelRepository):
    """Objects at ``<kind>/<id>`` in one bucket, created on construction if it does not exist."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.uri = f"s3://{bucket}?endpoint={endpoint}"
        self._client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region or None
        )
        if not self._client.bucket_exists(bucket):
            try:
                self._client.make_bucket(bucket, location=region or None)
            except S3Error as error:
                # The controller and combiners start together and may race to create it.
                if error.code != "BucketAlreadyOwnedByYou":
                    raise

    def _key(self, kind: Kind, object_id: str) -> str:
        _noun(kind)
        return f"{kind}/{validate_id(object_id)}"

    def _not_found(self, kind: Kind, object_id: str) -> NotFound:
        return NotFound(f"{_noun(kind)} {object_id!r} not found in {self.uri}")

    def put(self, kind: Kind, object_id: str, source: Source) -> int:
        key = self._key(kind, object_id)
        if isinstance(source, str | Path):
            # A file's length is known, so minio reads it part by part without any lookahead.
            self._client.fput_object(
                self.bucket,
                key,
                os.fspath(source),
                part_size=PART_SIZE,
                num_parallel_uploads=PARALLEL_UPLOADS,
            )
            return os.path.getsize(source)
        reader = _FullReads(source)
        self._client.put_object(
            self.bucket, key, reader, length=-1, part_size=PART_SIZE, num_parallel_uploads=PARALLEL_UPLOADS
        )
        return reader.count

    def open(self, kind: Kind, object_id: str) -> BinaryIO:
        key = self._key(kind, object_id)
        try:
            response = self._client.get_object(self.bucket, key)
        except S3Error as error:
            if error.code == "NoSuchKey":
                raise self._not_found(kind, object_id) from None
            raise
        return io.BufferedReader(_ObjectStream(response))  # type: ignore[return-value]

    def get_to_file(self, kind: Kind, object_id: str, path: str | Path) -> int:
        with self.open(kind, object_id) as stream:
            return write_atomically(Path(path), stream)

    def delete(self, kind: Kind, object_id: str) -> None:
        # S3 deletes are idempotent; the interface promises NotFound for a missing object.
        self.size(kind, object_id)
        self._client.remove_object(self.bucket, self._key(kind, object_id))

    def exists(self, kind: Kind, object_id: str) -> bool:
        try:
            self.size(kind, object_id)
        except NotFound:
            return False
        return True

    def size(self, kind: Kind, object_id: str) -> int:
        key = self._key(kind, object_id)
        try:
            stat = self._client.stat_object(self.bucket, key)
        except S3Error as error:
            if error.code == "NoSuchKey":
                raise self._not_found(kind, object_id) from None
            raise
        return int(stat.size or 0)

    def list_objects(self, kind: Kind) -> Iterator[StoredObject]:
        _noun(kind)
        # minio pages through ListObjectsV2 (1,000 keys a request) as the iterator is consumed.
        for item in self._client.list_objects(self.bucket, prefix=f"{kind}/"):
            name = (item.object_name or "").removeprefix(f"{kind}/")
            if item.is_dir or not name or item.last_modified is None:
                continue
            yield StoredObject(kind, name, int(item.size or 0), item.last_modified.astimezone(UTC))
