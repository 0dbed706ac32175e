"""Large test objects generated on the fly, so a 300 MB model never exists as one bytes object."""

import hashlib
import io
import random

_BLOCK_SIZE = 1024 * 1024


class PatternStream(io.RawIOBase):
    """A non-seekable stream of ``size`` pseudo-random bytes of unknown length, hashed as it is read.

    Each 1 MiB block is one random block stamped with its index, so reordered or dropped parts change
    the sha256. ``read`` returns at most one block, like a socket, to exercise short reads.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self._block = bytearray(random.Random(seed).randbytes(_BLOCK_SIZE))
        self._remaining = size
        self._index = 0
        self._offset = 0  # within the current block
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._offset == 0:
            self._block[:8] = self._index.to_bytes(8, "big")
        count = min(len(buffer), _BLOCK_SIZE - self._offset, self._remaining)
        piece = memoryview(self._block)[self._offset : self._offset + count]
        buffer[:count] = piece
        self.hash.update(piece)
        self._remaining -= count
        self._offset += count
        if self._offset == _BLOCK_SIZE:
            self._offset = 0
            self._index += 1
        return count


def sha256_of_stream(stream: io.RawIOBase | io.BufferedIOBase, chunk_size: int = 4 * 1024 * 1024) -> str:
    """Hash a stream in chunks, never holding it whole."""
    digest = hashlib.sha256()
    while chunk := stream.read(chunk_size):
        digest.update(chunk)
    return digest.hexdigest()
