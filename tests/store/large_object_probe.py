"""Put or get one large model in a fresh process and report its peak RSS growth, as JSON on stdout.

Run by test_repository_contract in child processes so the test runner's own memory is not counted.
Linux only. Not ru_maxrss: a child started from pytest reported 63-104 MB as its starting ru_maxrss
against 33 MB when started from a shell (the parent's high-water mark leaks through fork), which hid
the growth being measured. Instead the probe resets the kernel's peak (``/proc/self/clear_refs``),
takes the current RSS as the baseline and reads the peak (VmHWM) after the operation.
Usage: ``python -m tests.store.large_object_probe '<json config>'`` with config keys backend, operation
("put" or "get"), size, download (get), root (filesystem) or endpoint/access_key/secret_key/bucket (s3).
"""

import json
import sys
import time
from pathlib import Path
from typing import Any

from scaleout.store.repository import ModelRepository
from tests.store.sources import PatternStream, sha256_of_stream

MODEL_ID = "large"


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> int:
    """Make the current RSS the peak and return it."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return _status_bytes("VmRSS")


def _peak_rss() -> int:
    return _status_bytes("VmHWM")


def _repository(config: dict[str, Any]) -> ModelRepository:
    if config["backend"] == "filesystem":
        from scaleout.store.filesystem import FileModelRepository

        return FileModelRepository(Path(config["root"]))
    from scaleout.store.s3 import S3ModelRepository

    return S3ModelRepository(
        endpoint=config["endpoint"],
        access_key=config["access_key"],
        secret_key=config["secret_key"],
        bucket=config["bucket"],
        secure=False,
    )


def put(repository: ModelRepository, config: dict[str, Any]) -> dict[str, Any]:
    """Put a model from a non-seekable stream of unknown length."""
    source = PatternStream(config["size"])
    baseline = _reset_peak_rss()
    start = time.perf_counter()
    stored = repository.put_model(MODEL_ID, source)
    seconds = time.perf_counter() - start
    return {
        "baseline_rss": baseline,
        "rss_growth": _peak_rss() - baseline,
        "seconds": seconds,
        "stored": stored,
        "sha256": source.hash.hexdigest(),
    }


def get(repository: ModelRepository, config: dict[str, Any]) -> dict[str, Any]:
    """Read the model through open_model, then through get_model_to_file."""
    baseline = _reset_peak_rss()
    start = time.perf_counter()
    with repository.open_model(MODEL_ID) as stream:
        read_sha256 = sha256_of_stream(stream)
    seconds = time.perf_counter() - start
    written = repository.get_model_to_file(MODEL_ID, config["download"])
    with open(config["download"], "rb") as file:
        file_sha256 = sha256_of_stream(file)
    return {
        "baseline_rss": baseline,
        "rss_growth": _peak_rss() - baseline,
        "seconds": seconds,
        "size": repository.model_size(MODEL_ID),
        "written": written,
        "read_sha256": read_sha256,
        "file_sha256": file_sha256,
    }


def main(config: dict[str, Any]) -> dict[str, Any]:
    repository = _repository(config)
    return put(repository, config) if config["operation"] == "put" else get(repository, config)


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
