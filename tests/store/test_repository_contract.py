"""One contract for every model repository backend: the filesystem and S3 (moto's server, or MinIO).

Every test runs against each backend (pytest ids ``[filesystem]`` and ``[s3]``) through the public
interface only; the backend-specific part is confined to the ``backend`` fixture and ``stored_names``.
"""

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from scaleout.errors import InvalidId, NotFound
from scaleout.store.filesystem import FileModelRepository
from scaleout.store.repository import ModelRepository
from scaleout.store.s3 import S3ModelRepository
from scaleout.store.uri import InvalidURI, S3Credentials, open_model_repository
from tests.store.sources import PatternStream, sha256_of_stream

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
MB = 1_000_000
# More than two S3 parts (8 MiB each), so streams exercise multipart upload and its lookahead.
MULTIPART_SIZE = 20 * MB + 123


@dataclass
class Backend:
    name: str
    repository: ModelRepository
    location: str  # how NotFound messages name the repository
    stored_names: Callable[[], list[str]]  # every name under the repository, temp files included
    probe_config: dict[str, Any]  # how large_object_probe opens the same repository


@pytest.fixture(params=["filesystem", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "filesystem":
        root = tmp_path / "repository"

        def stored_files() -> list[str]:
            return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())

        return Backend(
            name="filesystem",
            repository=FileModelRepository(root),
            location=f"file://{root}",
            stored_names=stored_files,
            probe_config={"backend": "filesystem", "root": str(root)},
        )
    endpoint: str = request.getfixturevalue("s3_endpoint")
    credentials: S3Credentials = request.getfixturevalue("s3_credentials")
    bucket: str = request.getfixturevalue("s3_bucket")
    client = Minio(
        endpoint, access_key=credentials.access_key, secret_key=credentials.secret_key, secure=False
    )

    def stored_objects() -> list[str]:
        return sorted(item.object_name for item in client.list_objects(bucket, recursive=True))

    return Backend(
        name="s3",
        repository=S3ModelRepository(
            endpoint=endpoint,
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            bucket=bucket,
            secure=False,
        ),
        location=f"s3://{bucket}?endpoint={endpoint}",
        stored_names=stored_objects,
        probe_config={
            "backend": "s3",
            "endpoint": endpoint,
            "access_key": credentials.access_key,
            "secret_key": credentials.secret_key,
            "bucket": bucket,
        },
    )


def read_all_sha256(repository: ModelRepository, model_id: str) -> str:
    with repository.open_model(model_id) as stream:
        return sha256_of_stream(stream)


class BreaksMidway(PatternStream):
    """A source whose producer fails after ``fail_after`` bytes, like a client dropping mid-upload."""

    def __init__(self, size: int, fail_after: int) -> None:
        super().__init__(size)
        self._left_before_failure = fail_after

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._left_before_failure <= 0:
            raise ConnectionResetError("client went away mid-upload")
        count = super().readinto(memoryview(buffer)[: self._left_before_failure])
        self._left_before_failure -= count
        return count


def test_put_from_a_path_reads_back_the_same_bytes(backend: Backend, tmp_path: Path) -> None:
    data = os.urandom(MULTIPART_SIZE)
    source = tmp_path / "model.npz"
    source.write_bytes(data)

    assert backend.repository.put_model("m1", source) == len(data)
    assert backend.repository.put_model("m2", str(source)) == len(data)

    for model_id in ("m1", "m2"):
        assert read_all_sha256(backend.repository, model_id) == hashlib.sha256(data).hexdigest()
        assert backend.repository.model_size(model_id) == len(data)


@pytest.mark.parametrize("size", [0, 1_000, MULTIPART_SIZE], ids=["empty", "1kB", "multipart"])
def test_put_from_a_stream_of_unknown_length_reads_back_the_same_bytes(backend: Backend, size: int) -> None:
    source = PatternStream(size)
    assert not source.seekable()

    assert backend.repository.put_model("streamed", source) == size

    assert read_all_sha256(backend.repository, "streamed") == source.hash.hexdigest()
    assert backend.repository.model_size("streamed") == size


def test_open_returns_a_stream_that_reads_in_pieces(backend: Backend) -> None:
    backend.repository.put_model("m", PatternStream(3 * MB))
    with backend.repository.open_model("m") as stream:
        first = stream.read(10)
        rest = stream.read()
    assert len(first) == 10
    assert len(rest) == 3 * MB - 10
    assert (
        hashlib.sha256(first + rest).hexdigest() == hashlib.sha256(PatternStream(3 * MB).read()).hexdigest()
    )


def test_get_to_file_writes_the_object_and_leaves_no_temp_file(backend: Backend, tmp_path: Path) -> None:
    source = PatternStream(MULTIPART_SIZE)
    backend.repository.put_model("m", source)
    downloads = tmp_path / "downloads"
    downloads.mkdir()

    assert backend.repository.get_model_to_file("m", downloads / "m.npz") == MULTIPART_SIZE

    assert os.listdir(downloads) == ["m.npz"]
    with open(downloads / "m.npz", "rb") as file:
        assert sha256_of_stream(file) == source.hash.hexdigest()


def test_get_to_file_replaces_an_existing_file(backend: Backend, tmp_path: Path) -> None:
    backend.repository.put_model("m", PatternStream(1_000))
    target = tmp_path / "m.npz"
    target.write_bytes(b"stale" * 1_000)

    assert backend.repository.get_model_to_file("m", str(target)) == 1_000

    assert target.read_bytes() == PatternStream(1_000).read()


def test_put_moving_stores_the_file_and_takes_it_away(backend: Backend, tmp_path: Path) -> None:
    data = os.urandom(MULTIPART_SIZE)
    source = tmp_path / "state.npz"
    source.write_bytes(data)

    assert backend.repository.put_model_moving("m", source) == len(data)

    assert not source.exists()
    assert read_all_sha256(backend.repository, "m") == hashlib.sha256(data).hexdigest()
    assert backend.stored_names() == ["models/m"]


def test_a_model_path_is_none_or_the_stored_bytes(backend: Backend) -> None:
    backend.repository.put_model("m", PatternStream(1_000))

    path = backend.repository.model_path("m")

    if backend.name == "s3":
        assert path is None  # remote: read through open_model or get_model_to_file
    else:
        assert path is not None and path.read_bytes() == PatternStream(1_000).read()


def test_exists_size_and_delete(backend: Backend) -> None:
    repository = backend.repository
    assert not repository.model_exists("m")

    repository.put_model("m", PatternStream(1_234))

    assert repository.model_exists("m")
    assert repository.model_size("m") == 1_234
    repository.delete_model("m")
    assert not repository.model_exists("m")
    assert backend.stored_names() == []


def test_missing_objects_raise_not_found_naming_kind_id_and_repository(
    backend: Backend, tmp_path: Path
) -> None:
    repository = backend.repository
    model_message = f"model 'absent' not found in {backend.location}"
    package_message = f"package 'absent' not found in {backend.location}"
    calls: list[tuple[Callable[[], object], str]] = [
        (lambda: repository.open_model("absent"), model_message),
        (lambda: repository.model_size("absent"), model_message),
        (lambda: repository.delete_model("absent"), model_message),
        (lambda: repository.get_model_to_file("absent", tmp_path / "out"), model_message),
        *([] if backend.name == "s3" else [(lambda: repository.model_path("absent"), model_message)]),
        (lambda: repository.open_package("absent"), package_message),
        (lambda: repository.package_size("absent"), package_message),
        (lambda: repository.delete_package("absent"), package_message),
        (lambda: repository.get_package_to_file("absent", tmp_path / "out"), package_message),
    ]
    for call, message in calls:
        with pytest.raises(NotFound) as raised:
            call()
        assert str(raised.value) == message
    assert not (tmp_path / "out").exists()


def test_putting_an_existing_id_replaces_its_bytes(backend: Backend) -> None:
    backend.repository.put_model("m", PatternStream(MULTIPART_SIZE, seed=1))
    replacement = PatternStream(1_000, seed=2)

    assert backend.repository.put_model("m", replacement) == 1_000

    assert read_all_sha256(backend.repository, "m") == replacement.hash.hexdigest()
    assert backend.repository.model_size("m") == 1_000


def test_models_and_packages_are_separate_namespaces(backend: Backend) -> None:
    repository = backend.repository
    model, package = PatternStream(1_000, seed=1), PatternStream(2_000, seed=2)
    repository.put_model("same-id", model)
    repository.put_package("same-id", package)

    assert read_all_sha256(repository, "same-id") == model.hash.hexdigest()
    with repository.open_package("same-id") as stream:
        assert sha256_of_stream(stream) == package.hash.hexdigest()

    repository.delete_model("same-id")
    assert not repository.model_exists("same-id")
    assert repository.package_exists("same-id")
    assert repository.package_size("same-id") == 2_000


def test_list_objects_gives_each_object_of_a_kind_with_its_size_and_modification_time(
    backend: Backend,
) -> None:
    repository = backend.repository
    assert list(repository.list_objects("models")) == []
    before = datetime.now(UTC) - timedelta(minutes=5)  # clock and S3 timestamp granularity slack
    repository.put_model("m1", PatternStream(1_000, seed=1))
    repository.put_model("m2", PatternStream(MULTIPART_SIZE, seed=2))
    repository.put_package("p1", PatternStream(2_000, seed=3))
    after = datetime.now(UTC) + timedelta(minutes=5)

    models = sorted(repository.list_objects("models"), key=lambda o: o.id)
    packages = list(repository.list_objects("packages"))

    assert [(o.kind, o.id, o.size) for o in models] == [
        ("models", "m1", 1_000),
        ("models", "m2", MULTIPART_SIZE),
    ]
    assert [(o.kind, o.id, o.size) for o in packages] == [("packages", "p1", 2_000)]
    assert all(before < o.modified < after and o.modified.utcoffset() == timedelta(0) for o in models)
    repository.delete_model("m1")
    assert [o.id for o in repository.list_objects("models")] == ["m2"]
    with pytest.raises(ValueError, match="unknown kind 'weights'"):
        list(repository.list_objects("weights"))  # type: ignore[arg-type]


def test_list_objects_leaves_out_a_write_in_progress(backend: Backend) -> None:
    repository = backend.repository
    repository.put_model("done", PatternStream(10, seed=1))
    seen: list[list[str]] = []

    class ListingMidway(PatternStream):
        def read(self, size: int = -1) -> bytes:
            if not seen:
                seen.append(sorted(o.id for o in repository.list_objects("models")))
            return super().read(size)

    repository.put_model("writing", ListingMidway(MULTIPART_SIZE, seed=2))

    assert seen == [["done"]]
    assert sorted(o.id for o in repository.list_objects("models")) == ["done", "writing"]


def test_an_unknown_kind_is_rejected(backend: Backend) -> None:
    with pytest.raises(ValueError, match="unknown kind 'weights': use 'models' or 'packages'"):
        backend.repository.put("weights", "m", PatternStream(10))  # type: ignore[arg-type]
    assert backend.stored_names() == []


BAD_IDS = ["../x", "a/b", "..", ".", "", "has space", "/etc/passwd", "a\\b", "x" * 201, "model\n"]


@pytest.mark.parametrize("bad_id", BAD_IDS, ids=repr)
def test_bad_ids_are_rejected_before_touching_storage(backend: Backend, bad_id: str, tmp_path: Path) -> None:
    repository = backend.repository
    source = tmp_path / "source"
    source.write_bytes(b"x")
    calls: list[Callable[[], object]] = [
        lambda: repository.put_model(bad_id, source),
        lambda: repository.put_package(bad_id, PatternStream(10)),
        lambda: repository.open_model(bad_id),
        lambda: repository.get_model_to_file(bad_id, tmp_path / "out"),
        lambda: repository.delete_package(bad_id),
        lambda: repository.model_exists(bad_id),
        lambda: repository.package_size(bad_id),
    ]
    for call in calls:
        with pytest.raises(InvalidId) as raised:
            call()
        assert str(raised.value) == (
            f"invalid id {bad_id!r}: use 1-200 characters from A-Z a-z 0-9 . _ - (no '/' or '..')"
        )
    assert backend.stored_names() == []
    assert sorted(os.listdir(tmp_path)) == ["source"]


def test_a_source_failing_midway_leaves_no_object_and_no_temp_file(backend: Backend) -> None:
    with pytest.raises(ConnectionResetError, match="client went away mid-upload"):
        backend.repository.put_model("m", BreaksMidway(MULTIPART_SIZE, fail_after=MULTIPART_SIZE // 2))

    assert not backend.repository.model_exists("m")
    assert backend.stored_names() == []


def test_a_source_failing_midway_keeps_the_previous_object(backend: Backend) -> None:
    previous = PatternStream(5_000, seed=7)
    backend.repository.put_model("m", previous)

    with pytest.raises(ConnectionResetError, match="client went away mid-upload"):
        backend.repository.put_model("m", BreaksMidway(MULTIPART_SIZE, fail_after=MULTIPART_SIZE // 2))

    assert read_all_sha256(backend.repository, "m") == previous.hash.hexdigest()
    assert backend.stored_names() == ["models/m"]


def _run_probe(config: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.store.large_object_probe", json.dumps(config)],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_a_300_mb_model_goes_in_and_out_with_bounded_memory(backend: Backend, tmp_path: Path) -> None:
    """Each operation runs in a fresh child so its ru_maxrss growth is its own peak over its baseline."""
    size, bound = 300 * MB, 150 * MB
    put = _run_probe({**backend.probe_config, "operation": "put", "size": size})
    get = _run_probe({**backend.probe_config, "operation": "get", "download": str(tmp_path / "large.npz")})
    print(
        f"\n[{backend.name}] 300 MB peak RSS growth over a {put['baseline_rss'] / MB:.0f} MB baseline: "
        f"put {put['rss_growth'] / MB:.1f} MB "
        f"({size / MB / put['seconds']:.0f} MB/s), get {get['rss_growth'] / MB:.1f} MB "
        f"({size / MB / get['seconds']:.0f} MB/s)"
    )

    assert put["stored"] == get["size"] == get["written"] == size
    assert get["read_sha256"] == get["file_sha256"] == put["sha256"]
    assert put["rss_growth"] < bound
    assert get["rss_growth"] < bound


# open_model_repository: the URI is the only thing components know about the backend.


def test_file_uri_opens_a_filesystem_repository(tmp_path: Path) -> None:
    repository = open_model_repository(f"file://{tmp_path}/models-here")

    repository.put_model("m", PatternStream(10))

    assert isinstance(repository, FileModelRepository)
    assert (tmp_path / "models-here" / "models" / "m").stat().st_size == 10


def test_s3_uri_opens_an_s3_repository_and_creates_its_bucket(
    s3_endpoint: str, s3_credentials: S3Credentials, s3_bucket: str
) -> None:
    repository = open_model_repository(
        f"s3://{s3_bucket}?endpoint={s3_endpoint}&secure=false&region=", s3_credentials
    )

    repository.put_model("m", PatternStream(10))

    assert isinstance(repository, S3ModelRepository)
    assert repository.model_size("m") == 10


@pytest.mark.parametrize(
    ("uri", "credentials", "message"),
    [
        (
            "s3://?endpoint=localhost:9000",
            S3Credentials("a", "b"),
            "'s3://?endpoint=localhost:9000' names no bucket: write s3://bucket?endpoint=host:port",
        ),
        (
            "s3://models",
            S3Credentials("a", "b"),
            "'s3://models' names no endpoint: add ?endpoint=host:port",
        ),
        (
            "s3://models?endpoint=localhost:9000",
            None,
            "no S3 credentials: set SCALEOUT_S3_ACCESS_KEY and SCALEOUT_S3_SECRET_KEY "
            "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
        ),
        (
            "file://",
            None,
            "'file://': write file:///absolute/path or file://relative/path",
        ),
        (
            "ftp://host/models",
            None,
            "unknown model repository URI 'ftp://host/models': use file:///path or s3://bucket?endpoint=host:port",
        ),
    ],
    ids=["no-bucket", "no-endpoint", "no-credentials", "no-path", "unknown-scheme"],
)
def test_incomplete_repository_uris_are_rejected(
    uri: str, credentials: S3Credentials | None, message: str
) -> None:
    with pytest.raises(InvalidURI) as raised:
        open_model_repository(uri, credentials)
    assert str(raised.value) == message


def test_s3_credentials_prefer_scaleout_variables_over_aws_ones() -> None:
    aws = {"AWS_ACCESS_KEY_ID": "aws-a", "AWS_SECRET_ACCESS_KEY": "aws-s"}
    both = {**aws, "SCALEOUT_S3_ACCESS_KEY": "so-a", "SCALEOUT_S3_SECRET_KEY": "so-s"}

    assert S3Credentials.from_env(both) == S3Credentials("so-a", "so-s")
    assert S3Credentials.from_env(aws) == S3Credentials("aws-a", "aws-s")
    assert S3Credentials.from_env({"SCALEOUT_S3_ACCESS_KEY": "only-half"}) is None
