"""One package check: what the API refuses at upload, every client refuses at unpack, with the same reason."""

from pathlib import Path

import pytest

from scaleout import APIClient
from scaleout.api.client import APIError
from scaleout.compute_package import PackageLimits, extract_package
from scaleout.errors import PackageError
from tests.api.conftest import ApiServer, run_api
from tests.hostile_packages import ALIAS_BOMB, PROJECT_FILE, inflating_tarball, tarball

REFUSE = "refusing to unpack it: rebuild the package without it"


def nested_links(path: Path) -> Path:
    # sub/up is the package root, so sub/x -> up/.. is the root's parent, though "sub/up/.." reads as "sub".
    return tarball(path, {"scaleout.yaml": PROJECT_FILE}, {"sub/up": "..", "sub/x": "up/.."})


def link_then_write_through_it(path: Path) -> Path:
    return tarball(path, {"scaleout.yaml": PROJECT_FILE}, {"a": ".", "b": "a/.."})


def alias_bomb(path: Path) -> Path:
    return tarball(path, {"scaleout.yaml": ALIAS_BOMB})


def bomb(path: Path) -> Path:
    return inflating_tarball(path, 2 * 1024**3)


HOSTILE = {
    "nested-relative-links": (
        nested_links,
        f"unsafe package member 'sub/x' is a symlink to 'up/..', outside the package; {REFUSE}",
    ),
    "link-chain": (
        link_then_write_through_it,
        f"unsafe package member 'b' is a symlink to 'a/..', outside the package; {REFUSE}",
    ),
    "alias-bomb": (
        alias_bomb,
        "scaleout.yaml expands to more than 10000 values (through YAML aliases); "
        "write it out without anchors",
    ),
}


def assert_nothing_stored(server: ApiServer) -> None:
    assert server.statestore.packages.count() == 0
    stored = server.models_dir / "packages"
    assert not stored.exists() or not any(stored.iterdir())


def assert_refused_alike(server: ApiServer, api: APIClient, path: Path, reason: str) -> None:
    """The API and a client's unpacking refuse the package with the same message, and neither keeps
    anything of it."""
    with pytest.raises(APIError) as error:
        api.set_active_package(path)
    client_dir = path.parent / "client"
    with pytest.raises(PackageError) as refused:
        extract_package(path, client_dir / "package")

    assert error.value.status_code == 422 and error.value.message == reason
    assert str(refused.value) == reason
    assert_nothing_stored(server)
    assert not client_dir.exists()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_package_is_refused_alike_by_the_api_and_the_client(
    server: ApiServer, api: APIClient, tmp_path: Path, case: str
):
    make, reason = HOSTILE[case]
    path = make(tmp_path / "hostile.tgz")

    assert_refused_alike(server, api, path, reason)


def test_a_small_tarball_that_inflates_to_gigabytes_is_refused_by_the_api_and_the_client(
    server: ApiServer, api: APIClient, tmp_path: Path
):
    """2 MB with a 2 GiB member: refused at the member's header, under the 250x bound."""
    path = bomb(tmp_path / "bomb.tgz")
    size = path.stat().st_size
    assert size < 3 * 10**6
    reason = (
        f"the package unpacks to more than {250 * size} bytes (at most 250 times the tarball's size, "
        "and --max-unpacked-bytes); leave data out of it (list it in .scaleoutignore)"
    )

    assert_refused_alike(server, api, path, reason)


def test_the_unpacked_size_limit_is_the_apis_setting(tmp_path: Path):
    path = tarball(tmp_path / "p.tgz", {"scaleout.yaml": PROJECT_FILE, "data.bin": bytes(range(256)) * 8})
    with run_api(tmp_path / "api", max_unpacked_bytes=1000) as server, server.client() as api:
        with pytest.raises(APIError) as error:
            api.set_active_package(path)
        assert_nothing_stored(server)
    assert error.value.message.startswith("the package unpacks to more than 1000 bytes")


def test_the_member_count_is_bounded(tmp_path: Path):
    path = tarball(tmp_path / "p.tgz", {"scaleout.yaml": PROJECT_FILE, **{f"f{i}": b"" for i in range(5)}})
    with pytest.raises(PackageError) as refused:
        extract_package(path, tmp_path / "dest", PackageLimits(max_members=5))
    assert str(refused.value) == (
        "the package has more than 5 files; leave data out of it (list it in .scaleoutignore)"
    )


def test_links_that_stay_inside_through_other_links_are_accepted(api: APIClient, tmp_path: Path):
    path = tarball(
        tmp_path / "ok.tgz",
        {"scaleout.yaml": PROJECT_FILE, "data/real.txt": b"x"},
        {"sub/up": "..", "sub/data": "up/data", "alias.txt": "sub/data/real.txt"},
    )
    assert api.set_active_package(path)["active"] is True
    dest = extract_package(path, tmp_path / "dest")
    assert (dest / "alias.txt").read_text() == "x"
