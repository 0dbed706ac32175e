"""FileChunk messages on the wire, framed and parsed by hand: model bytes are copied, never re-encoded.

A FileChunk is one length-delimited field (``bytes data = 1``): a tag byte, a varint length, the
bytes. Going through the protobuf classes costs whole-chunk copies on the event loop that moves the
bytes, and serialising one is slow besides (~1.8 ms per 1 MB chunk, against ~0.03 ms to frame it:
benchmarks/chunk_bench.py). At 1,000 clients a round on a 1 MB model, those copies were most of the
combiner's CPU, and a sixth of the swarm's. So the combiner sends downloads already framed (``frame``,
once per staged model) and the client frames its uploads; each side's deserializer returns a view of
the data inside the received message (``parse``), copying nothing.
"""

from scaleout.proto import scaleout_pb2 as pb

_DATA_TAG = 0x0A  # field 1, wire type 2 (length-delimited)
# The service whose two streams carry FileChunks ("scaleout.ModelService"): both sides register or call
# its methods with this module's framing in place of the generated code's.
MODEL_SERVICE = pb.DESCRIPTOR.services_by_name["ModelService"].full_name


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def frame(data: bytes) -> bytes:
    """The serialised FileChunk holding ``data`` (what ``FileChunk(data=data).SerializeToString()``
    returns: an empty chunk serialises to nothing)."""
    if not data:
        return b""
    return b"%c%b%b" % (_DATA_TAG, _varint(len(data)), data)


def _data_bounds(raw: bytes) -> tuple[int, int] | None:
    """Where the data of a FileChunk that is exactly one data field lies in ``raw``; None otherwise."""
    if len(raw) < 2 or raw[0] != _DATA_TAG:
        return None
    length, shift, at = 0, 0, 1
    while at < len(raw) and at <= 10:
        byte = raw[at]
        length |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return (at, length) if at + length == len(raw) else None
        shift += 7
    return None


def parse(raw: bytes) -> memoryview:
    """A received FileChunk's data, as a view into ``raw``; any other encoding of the message (unknown
    fields, a repeated data field) goes through protobuf, which keeps the last data field."""
    bounds = _data_bounds(raw)
    if bounds is None:
        return memoryview(pb.FileChunk.FromString(raw).data)
    start, length = bounds
    return memoryview(raw)[start : start + length]


def serialize(chunk: bytes | pb.FileChunk) -> bytes:
    """Download's response serializer: framed bytes go out as they are, a message is serialised."""
    return chunk if isinstance(chunk, bytes) else chunk.SerializeToString()


def data_size(chunk: bytes | memoryview) -> int:
    """The model bytes a chunk carries: an upload's data view (``parse``) or a download's framed chunk."""
    if isinstance(chunk, memoryview):
        return chunk.nbytes
    bounds = _data_bounds(chunk)
    return bounds[1] if bounds else len(pb.FileChunk.FromString(chunk).data)
