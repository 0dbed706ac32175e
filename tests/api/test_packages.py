"""Compute package upload: checked before anything is stored, then active, checksummed and served."""

import hashlib
from pathlib import Path

import httpx
import pytest

from scaleout import APIClient
from scaleout.api.client import APIError
from scaleout.compute_package import create_package, sha256_file
from tests.api.conftest import ApiServer, run_api
from tests.hostile_packages import PROJECT_FILE, tarball


def package_folder(root: Path) -> Path:
    folder = root / "package"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scaleout.yaml").write_bytes(PROJECT_FILE)
    (folder / "train.py").write_text("print('train')\n")
    return folder


def assert_nothing_stored(server: ApiServer) -> None:
    assert server.statestore.packages.count() == 0
    stored = server.models_dir / "packages"
    assert not stored.exists() or not any(stored.iterdir())


def test_upload_becomes_active_with_its_sha256_and_downloads_identically(
    server: ApiServer, api: APIClient, tmp_path: Path
):
    tgz = create_package(package_folder(tmp_path), output_dir=tmp_path)

    package = api.set_active_package(tgz, helper="numpyhelper", name="mnist")

    assert package["active"] is True and package["name"] == "mnist"
    assert api.get_active_package()["id"] == package["id"]
    assert api.get_package_checksum() == {"checksum": sha256_file(tgz)}
    downloaded = api.download_package(tmp_path / "downloaded.tgz")
    assert downloaded.read_bytes() == tgz.read_bytes()


def test_a_folder_is_packed_and_the_newest_upload_is_the_active_one(api: APIClient, tmp_path: Path):
    first = api.set_active_package(tarball(tmp_path / "a.tgz", {"scaleout.yaml": PROJECT_FILE}))

    second = api.set_active_package(package_folder(tmp_path))

    assert api.get_active_package()["id"] == second["id"] != first["id"]
    assert api.get_packages(active=True)["count"] == 1
    assert api.get_packages()["count"] == 2


@pytest.mark.parametrize(
    ("members", "links", "reason"),
    [
        ({"scaleout.yaml": PROJECT_FILE, "../evil": b"x"}, None, "unsafe package member '../evil'"),
        ({"scaleout.yaml": PROJECT_FILE, "/etc/evil": b"x"}, None, "unsafe package member '/etc/evil'"),
        ({"scaleout.yaml": PROJECT_FILE}, {"data": "../../outside"}, "is a symlink to '../../outside'"),
        ({"client/scaleout.yaml": PROJECT_FILE}, None, "no scaleout.yaml at its root"),
        ({"scaleout.yaml": b"just: text\n"}, None, "'entry_points' section"),
    ],
    ids=["dotdot", "absolute", "symlink-out", "no-project-file", "no-entry-points"],
)
def test_an_unsafe_or_incomplete_package_is_refused_with_the_reason_and_nothing_stored(
    server: ApiServer, api: APIClient, tmp_path: Path, members: dict, links: dict | None, reason: str
):
    with pytest.raises(APIError) as error:
        api.set_active_package(tarball(tmp_path / "bad.tgz", members, links))

    assert error.value.status_code == 422
    assert reason in error.value.message
    assert_nothing_stored(server)


def test_a_file_that_is_not_a_gzip_tarball_is_refused(server: ApiServer, api: APIClient, tmp_path: Path):
    not_a_tarball = tmp_path / "package.tgz"
    not_a_tarball.write_text("print('hello')\n")

    with pytest.raises(APIError) as error:
        api.set_active_package(not_a_tarball)

    assert error.value.status_code == 422
    assert "not a gzip tarball" in error.value.message
    assert_nothing_stored(server)


def test_a_gzip_file_that_is_not_a_tarball_is_refused(server: ApiServer, api: APIClient, tmp_path: Path):
    import gzip

    fake = tmp_path / "package.tgz"
    fake.write_bytes(gzip.compress(b"not a tar archive at all" * 100))

    with pytest.raises(APIError) as error:
        api.set_active_package(fake)

    assert error.value.status_code == 422
    assert "not a readable gzip tarball" in error.value.message
    assert_nothing_stored(server)


def test_an_unknown_helper_is_refused_naming_the_known_ones(
    server: ApiServer, api: APIClient, tmp_path: Path
):
    with pytest.raises(APIError) as error:
        api.set_active_package(tarball(tmp_path / "p.tgz", {"scaleout.yaml": PROJECT_FILE}), helper="torchy")

    assert error.value.status_code == 422
    assert "unknown helper 'torchy'" in error.value.message and "numpyhelper" in error.value.message
    assert_nothing_stored(server)


def test_an_upload_over_the_size_bound_is_413_and_not_stored(tmp_path: Path):
    big = tmp_path / "big.tgz"
    big.write_bytes(b"\x1f\x8b" + b"\0" * (3 * 1024 * 1024))
    with run_api(tmp_path / "api", max_upload_bytes=1024 * 1024) as server, server.client() as api:
        with pytest.raises(APIError) as error:
            api.set_active_package(big)

        assert error.value.status_code == 413
        assert "limit of 1048576 bytes" in error.value.message
        assert_nothing_stored(server)


def test_the_size_bound_holds_without_a_content_length(tmp_path: Path):
    def chunks():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="p.tgz"\r\n\r\n'
        for _ in range(3):
            yield b"\0" * (1024 * 1024)

    with run_api(tmp_path / "api", max_upload_bytes=1024 * 1024) as server, server.http() as http:
        headers = {"Content-Type": "multipart/form-data; boundary=b"}
        response = http.post("/packages/", content=chunks(), headers=headers)

        assert response.status_code == 413
        assert_nothing_stored(server)


def test_without_an_active_package_its_routes_answer_404_saying_how(http: httpx.Client):
    for path in ("/packages/active", "/packages/checksum", "/packages/download"):
        response = http.get(path)
        assert response.status_code == 404, path
        assert "upload one with POST /api/v1/packages/" in response.json()["detail"]


def test_the_checksum_is_the_sha256_of_the_uploaded_bytes(api: APIClient, tmp_path: Path):
    tgz = tarball(tmp_path / "p.tgz", {"scaleout.yaml": PROJECT_FILE, "a.bin": bytes(range(256)) * 4000})

    api.set_active_package(tgz)

    assert api.get_package_checksum()["checksum"] == hashlib.sha256(tgz.read_bytes()).hexdigest()
