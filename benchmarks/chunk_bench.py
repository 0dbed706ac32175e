"""What a FileChunk costs to put on the wire and take off it: protobuf against the hand framing of
proto/chunks.py, which both the combiner and the edge client use for model bytes.

CPU time per chunk, best of several runs (other work on the machine weighs less so). Taking a chunk
off the wire with protobuf is parsing it and reading ``.data`` once, as a client that writes the bytes
out does. Run: ``.venv/bin/python benchmarks/chunk_bench.py [--sizes MB ...] [--repeats N]``.
"""

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script, so the repository root is not on sys.path by default.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaleout.proto import chunks
from scaleout.proto import scaleout_pb2 as pb


def per_call_us(call: Callable[[], object], repeats: int, calls: int = 200) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        for _ in range(calls):
            call()
        best = min(best, time.process_time() - started)
    return best / calls * 1e6


COLUMNS = ("protobuf out us", "framed out us", "protobuf in us", "parsed in us")


def figures(size_mb: float, repeats: int) -> list[float]:
    """Microseconds per chunk of ``size_mb``, in the order of COLUMNS."""
    data = bytes(range(256)) * int(size_mb * 1e6 / 256)
    wire = chunks.frame(data)
    assert wire == pb.FileChunk(data=data).SerializeToString()
    calls: list[Callable[[], object]] = [
        lambda: pb.FileChunk(data=data).SerializeToString(),
        lambda: chunks.frame(data),
        lambda: pb.FileChunk.FromString(wire).data,
        lambda: chunks.parse(wire),
    ]
    return [per_call_us(call, repeats) for call in calls]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1.0, 4.0], help="chunk sizes in MB")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'chunk MB':>8} " + " ".join(f"{column:>15}" for column in COLUMNS))
    for size in args.sizes:
        print(f"{size:>8g} " + " ".join(f"{figure:>15.1f}" for figure in figures(size, args.repeats)))
    print(f"CPU time per chunk, best of {args.repeats} runs")


if __name__ == "__main__":
    main()
