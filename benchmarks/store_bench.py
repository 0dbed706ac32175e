"""Storage throughput on this machine: model repository put/get and statestore inserts/reads per backend.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/store_bench.py``). ``main()`` calls every
``bench_*`` function in the order they are defined and prints the rows they return as one table. The
servers are the ones the tests use (started the same way), so the figures are what ``make test`` talks
to, not production.
"""

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run as a script, so the repository root (for tests.fixtures) is not on sys.path by default.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaleout.store.repository import CHUNK_SIZE, ModelRepository
from scaleout.store.statestore import Repository, Statestore
from tests.store.sources import PatternStream

MB = 1_000_000
MODEL_BYTES = 100 * MB


@dataclass(frozen=True)
class Row:
    backend: str
    operation: str
    value: float
    unit: str


def _repository_rows(backend: str, repository: ModelRepository) -> list[Row]:
    """Put a 100 MB model from a stream of unknown length, read it back through open_model and to a file."""
    start = time.perf_counter()
    repository.put_model("bench-model", PatternStream(MODEL_BYTES))
    put_seconds = time.perf_counter() - start

    start = time.perf_counter()
    received = 0
    with repository.open_model("bench-model") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            received += len(chunk)
    get_seconds = time.perf_counter() - start
    if received != MODEL_BYTES:
        raise RuntimeError(f"{backend}: read back {received} bytes, expected {MODEL_BYTES}")

    with tempfile.TemporaryDirectory() as downloads:
        start = time.perf_counter()
        repository.get_model_to_file("bench-model", Path(downloads) / "model.npz")
        to_file_seconds = time.perf_counter() - start
    repository.delete_model("bench-model")
    return [
        Row(backend, "put 100 MB model (stream)", MODEL_BYTES / MB / put_seconds, "MB/s"),
        Row(backend, "get 100 MB model (open_model)", MODEL_BYTES / MB / get_seconds, "MB/s"),
        Row(backend, "get 100 MB model (to file, fsync)", MODEL_BYTES / MB / to_file_seconds, "MB/s"),
    ]


def bench_repository_filesystem() -> list[Row]:
    from scaleout.store.filesystem import FileModelRepository

    with tempfile.TemporaryDirectory() as root:
        return _repository_rows("filesystem", FileModelRepository(Path(root)))


def bench_repository_s3() -> list[Row]:
    from scaleout.store.s3 import S3ModelRepository
    from tests.fixtures.s3_server import TEST_ACCESS_KEY, TEST_SECRET_KEY, start_s3_server

    endpoint, stop = start_s3_server()
    try:
        repository = S3ModelRepository(
            endpoint=endpoint,
            access_key=TEST_ACCESS_KEY,
            secret_key=TEST_SECRET_KEY,
            bucket="bench",
            secure=False,
        )
        return _repository_rows("s3 (moto server)", repository)
    finally:
        stop()


# -- statestore: inserts and reads per second of round and validation records ------------------------

RECORDS = 2_000
LIST_QUERIES = 200


def _per_second(calls: int, start: float) -> float:
    return calls / (time.perf_counter() - start)


def _record_rows(
    backend: str,
    kind: str,
    repository: Repository[Any],
    items: list[Any],
    filter_for: Callable[[int], dict[str, Any]],
) -> list[Row]:
    """Insert the items one by one, get each by id, then run LIST_QUERIES filtered listings of 20."""
    start = time.perf_counter()
    for item in items:
        repository.add(item)
    inserts = _per_second(len(items), start)
    start = time.perf_counter()
    for item in items:
        repository.get(item.id)
    gets = _per_second(len(items), start)
    start = time.perf_counter()
    for i in range(LIST_QUERIES):
        if not repository.list(filter_for(i), sort_key="id", limit=20).items:
            raise RuntimeError(f"{backend}: a {kind} listing matched nothing")
    lists = _per_second(LIST_QUERIES, start)
    return [
        Row(backend, f"insert {kind}", inserts, "records/s"),
        Row(backend, f"get {kind} by id", gets, "records/s"),
        Row(backend, f"list {kind}s (filter, 20/page)", lists, "queries/s"),
    ]


def _statestore_rows(backend: str, store: Statestore) -> list[Row]:
    from scaleout.store.entities import Round, Validation

    rounds = [Round(session_id=f"s{i % 10}", index=i // 10) for i in range(RECORDS)]
    validations = [
        Validation(model_id=f"m{i % 20}", client_id=f"c{i % 50}", metrics={"accuracy": i / RECORDS})
        for i in range(RECORDS)
    ]
    return [
        *_record_rows(
            backend,
            "round",
            store.rounds,
            rounds,
            lambda i: {"session_id": f"s{i % 10}", "index": {"$gte": i % 190, "$lt": i % 190 + 10}},
        ),
        *_record_rows(
            backend, "validation", store.validations, validations, lambda i: {"client_id": f"c{i % 50}"}
        ),
    ]


def bench_statestore_sqlite_file() -> list[Row]:
    from scaleout.store.sqlite import SQLiteStatestore

    with tempfile.TemporaryDirectory() as root:
        store = SQLiteStatestore(Path(root) / "state.db")
        try:
            return _statestore_rows("sqlite-file", store)
        finally:
            store.close()


def bench_statestore_sqlite_memory() -> list[Row]:
    from scaleout.store.sqlite import SQLiteStatestore

    store = SQLiteStatestore(":memory:")
    try:
        return _statestore_rows("sqlite-memory", store)
    finally:
        store.close()


def bench_statestore_mongodb() -> list[Row]:
    from scaleout.store.mongo import MongoStatestore
    from tests.fixtures.mongo_server import start_mongo_server

    uri, stop = start_mongo_server()
    try:
        store = MongoStatestore(uri, "bench")
        try:
            return _statestore_rows("mongodb (mongoeco server)", store)
        finally:
            store.close()
    finally:
        stop()


def print_table(rows: list[Row]) -> None:
    backend_width = max(len(row.backend) for row in rows)
    operation_width = max(len(row.operation) for row in rows)
    for row in rows:
        label = f"{row.backend:<{backend_width}}  {row.operation:<{operation_width}}"
        print(f"{label}  {row.value:>12,.1f} {row.unit}")


def main() -> None:
    benches: list[Callable[[], list[Row]]] = [
        value for name, value in globals().items() if name.startswith("bench_") and callable(value)
    ]
    rows: list[Row] = []
    for bench in benches:
        print(f"running {bench.__name__} ...", file=sys.stderr, flush=True)
        rows.extend(bench())
    print_table(rows)


if __name__ == "__main__":
    main()
