"""The client fetches the active compute package over REST, checks it, and unpacks it safely."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from scaleout.client.edge import EdgeClient
from scaleout.compute_package import create_package
from scaleout.errors import PackageError
from tests.client.doubles import (
    SCALEOUT_YAML,
    WAIT,
    ApiDouble,
    CombinerDouble,
    assigned,
    load_npz,
    make_package,
    model_bytes,
    next_item,
    serving,
    start_combiner,
    tarball,
    train_task,
)
from tests.client.test_edge import CLIENT_ID, WEIGHTS, free_port, run, settings_for


def packed(tmp_path: Path) -> bytes:
    """The test compute package as `scaleout package create` would upload it."""
    folder = make_package(tmp_path / "source")
    return create_package(folder, output_dir=tmp_path / "out").read_bytes()


def test_remote_package_is_downloaded_checked_unpacked_and_run(tmp_path: Path) -> None:
    package = packed(tmp_path)
    answers = [
        (503, {"detail": "no combiner is online"}),
        (203, {"message": "no compute package is active yet; upload one"}),
    ]

    async def scenario() -> None:
        double = CombinerDouble(models={"m0": model_bytes(WEIGHTS, tmp_path)})
        server, port = await start_combiner(double)
        try:
            with ApiDouble([*answers, assigned(port, package="remote")], package=package) as api:
                settings = settings_for(tmp_path, api.url, local_package=None, token="s3cret")
                async with serving(EdgeClient(settings)) as client:
                    await next_item(double.streams_opened, client, "the task stream")
                    double.push(CLIENT_ID, train_task(CLIENT_ID, "m0"))
                    update = await next_item(double.updates, client, "the update from the downloaded package")
        finally:
            await server.stop(None)

        assert [call[0]["package"] for call in api.add_calls] == ["remote"] * 3
        assert all(call[1]["Authorization"] == "Bearer s3cret" for call in api.add_calls)
        unpacked = tmp_path / "work" / "package"
        assert (unpacked / "scaleout.yaml").read_text() == SCALEOUT_YAML.lstrip()
        assert (unpacked / "startup.log").read_text() == "started\n"
        data, _ = double.uploads[update.model_update_id]
        np.testing.assert_array_equal(load_npz(data)[0], WEIGHTS[0] + 1)
        assert not (tmp_path / "work" / "package.tgz").exists()

    run(scenario())


def test_package_with_a_wrong_checksum_is_refused(tmp_path: Path) -> None:
    package = packed(tmp_path)
    stated = hashlib.sha256(b"another package").hexdigest()

    async def scenario() -> None:
        with ApiDouble([assigned(free_port(), package="remote")], package=package, checksum=stated) as api:
            client = EdgeClient(settings_for(tmp_path, api.url, local_package=None))
            with pytest.raises(PackageError, match=f"the API states {stated}"):
                await asyncio.wait_for(client.run(handle_signals=False), WAIT)

    run(scenario())
    work = tmp_path / "work"
    assert not (work / "package").exists()
    assert sorted(p.name for p in work.iterdir()) == [".client.lock"]  # no tarball, no package


def test_package_with_a_parent_path_member_is_refused_and_nothing_is_written_outside(tmp_path: Path) -> None:
    evil = tarball({"scaleout.yaml": SCALEOUT_YAML.encode(), "../evil": b"pwned", "train.py": b"print(1)\n"})
    work = tmp_path / "clients" / "work"

    async def scenario() -> None:
        with ApiDouble([assigned(free_port(), package="remote")], package=evil) as api:
            client = EdgeClient(settings_for(tmp_path, api.url, local_package=None, work_dir=work))
            with pytest.raises(PackageError, match=r"'\.\./evil'.*refusing to unpack"):
                await asyncio.wait_for(client.run(handle_signals=False), WAIT)

    run(scenario())
    assert list(tmp_path.rglob("evil")) == []
    assert not (work / "package").exists()
    assert not any(p.name.startswith(".package-") for p in work.iterdir()), "staging folder left behind"


def test_a_package_over_the_clients_unpacked_limit_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    package = packed(tmp_path)
    work = tmp_path / "work"

    async def scenario() -> None:
        with ApiDouble([assigned(free_port(), package="remote")], package=package) as api:
            client = EdgeClient(settings_for(tmp_path, api.url, local_package=None, max_unpacked_bytes=100))
            with pytest.raises(PackageError) as refused:
                await asyncio.wait_for(client.run(handle_signals=False), WAIT)
        assert str(refused.value).startswith("the package unpacks to more than 100 bytes")

    run(scenario())
    assert not (work / "package").exists()
    assert sorted(p.name for p in work.iterdir()) == [".client.lock"]


def test_api_without_an_active_package_tells_the_user_to_upload_one(tmp_path: Path) -> None:
    async def scenario() -> None:
        # The API assigned a combiner, then lost its package (404): the client cannot run.
        with ApiDouble([assigned(free_port(), package="remote")], package=None) as api:
            client = EdgeClient(settings_for(tmp_path, api.url, local_package=None))
            with pytest.raises(PackageError, match=r"no active compute package.*--local-package"):
                await asyncio.wait_for(client.run(handle_signals=False), WAIT)

    run(scenario())


def test_package_tarball_of_a_client_folder_is_run_from_that_folder(tmp_path: Path) -> None:
    nested = tarball({"client/scaleout.yaml": SCALEOUT_YAML.encode(), "client/startup.py": b"print('hi')\n"})

    async def scenario() -> None:
        double = CombinerDouble()
        server, port = await start_combiner(double)
        try:
            with ApiDouble([assigned(port, package="remote")], package=nested) as api:
                async with serving(EdgeClient(settings_for(tmp_path, api.url, local_package=None))) as client:
                    hello = await next_item(double.streams_opened, client, "the task stream")
        finally:
            await server.stop(None)
        assert json.loads(hello.data)["name"] == "edge one"

    run(scenario())
    assert (tmp_path / "work" / "package" / "client" / "scaleout.yaml").is_file()
