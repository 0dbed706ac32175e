"""FileChunks framed and parsed by hand (proto/chunks.py) agree with protobuf's encoding."""

import pytest

from scaleout.proto import chunks
from scaleout.proto import scaleout_pb2 as pb

SIZES = [0, 1, 127, 128, 16_383, 16_384, 1_000_000, 1024 * 1024, 4 * 1024 * 1024]


@pytest.mark.parametrize("size", SIZES)
def test_a_framed_chunk_is_the_serialised_file_chunk(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    framed = chunks.frame(data)
    assert framed == pb.FileChunk(data=data).SerializeToString()
    assert bytes(chunks.parse(framed)) == data
    assert chunks.data_size(framed) == chunks.data_size(chunks.parse(framed)) == size


def test_a_chunk_with_an_unknown_field_or_a_repeated_data_field_parses_as_protobuf_does() -> None:
    unknown = b"\x10\x05"  # field 2, varint 5: a newer sender's field
    repeated = chunks.frame(b"first") + chunks.frame(b"last")
    for raw in (chunks.frame(b"data") + unknown, unknown + chunks.frame(b"data"), repeated):
        assert bytes(chunks.parse(raw)) == pb.FileChunk.FromString(raw).data
    assert bytes(chunks.parse(repeated)) == b"last"
