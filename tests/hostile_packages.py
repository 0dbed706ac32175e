"""Hostile compute packages the API and every client must refuse alike: bombs, link tricks, YAML bombs."""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from pathlib import Path

PROJECT_FILE = b"entry_points:\n  train:\n    command: python train.py\n"
# Nine levels of ten aliases each: a few hundred bytes that stand for 10**9 strings.
ALIAS_BOMB = (
    b'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
    + b"".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 10)}]\n".encode() for i in range(8)
    )
    + b"entry_points:\n  train:\n    command: python train.py\n"
)


def tarball(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    """A .tgz written by hand: regular members with their bytes, then symlinks name -> target."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def inflating_tarball(path: Path, member_bytes: int, chunk: int = 16 << 20) -> Path:
    """A valid .tgz of scaleout.yaml and one member of ``member_bytes`` zeros, ~1/1000 of that on disk.

    After a full flush the deflate stream of a zero chunk is the same bytes every time, so it is made
    once and repeated: a 2 GiB member costs a 16 MiB buffer, not 2 GiB.
    """
    head = io.BytesIO()
    with tarfile.open(fileobj=head, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("scaleout.yaml")
        info.size = len(PROJECT_FILE)
        tar.addfile(info, io.BytesIO(PROJECT_FILE))
        big = tarfile.TarInfo("data.bin")
        big.size = member_bytes
        head.write(big.tobuf(format=tarfile.GNU_FORMAT))
        prefix = head.getvalue()[: head.tell()]
        tar.fileobj = io.BytesIO()  # the archive's end blocks go nowhere; written below
    tail = bytes(-member_bytes % 512 + 1024)  # padding of the member, then the end-of-archive blocks
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    piece = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_FULL_FLUSH)
    rest = member_bytes % chunk
    last = compressor.compress(bytes(rest) + tail) + compressor.flush(zlib.Z_FINISH)
    crc = zlib.crc32(prefix)
    for _ in range(member_bytes // chunk):
        crc = zlib.crc32(bytes(chunk), crc)
    crc = zlib.crc32(bytes(rest) + tail, crc)
    total = len(prefix) + member_bytes + len(tail)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    body = first + piece * (member_bytes // chunk) + last
    path.write_bytes(header + body + struct.pack("<LL", crc, total & 0xFFFFFFFF))
    return path
