"""No stuck client: every call has a deadline, and a task that cannot finish never holds later ones."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest

from scaleout.client.edge import EdgeClient
from scaleout.proto import scaleout_pb2
from tests.client.doubles import (
    WAIT,
    ApiDouble,
    CombinerDouble,
    assigned,
    connected,
    make_package,
    model_bytes,
    next_item,
    serving,
    start_combiner,
    train_task,
    validate_task,
)
from tests.client.test_edge import CLIENT_ID, WEIGHTS, _open_gate, leftover_task_files, run, settings_for


async def started_train(package: Path) -> int:
    """The pid of the train entry point blocked on the package's gate, once it runs."""
    pid_file = package / "train.pid"
    async with asyncio.timeout(WAIT):
        while not pid_file.exists() or not pid_file.read_text():  # written by another process: no event
            await asyncio.sleep(0.02)
    return int(pid_file.read_text())


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_task_of_a_newer_round_supersedes_a_stuck_entry_point(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg")
    gate = package / "gate"
    os.mkfifo(gate)  # the first train blocks on it for good

    async def scenario() -> None:
        double = CombinerDouble(models={"m0": model_bytes(WEIGHTS, tmp_path)})
        try:
            async with connected(double, partial(settings_for, tmp_path)) as client:
                double.push(CLIENT_ID, train_task(CLIENT_ID, "m0", round_id="r1", correlation_id="old"))
                stuck = await started_train(package)
                gate.unlink()  # the next train runs freely; the stuck one stays blocked opening it
                double.push(CLIENT_ID, train_task(CLIENT_ID, "m0", round_id="r2", correlation_id="new"))
                status = await next_item(double.statuses, client, "the abandonment report")
                update = await next_item(double.updates, client, "the newer round's update")
                assert not is_running(stuck), "the abandoned entry point still runs"
        finally:
            _open_gate(gate)

        report = json.loads(status.status)
        assert (report["correlation_id"], report["round_id"]) == ("old", "r1")
        assert report["error"] == "task abandoned by the client: superseded by task new of round r2"
        assert (update.correlation_id, update.round_id) == ("new", "r2")
        assert leftover_task_files(tmp_path / "work") == []

    run(scenario())


def test_a_validate_task_waits_for_the_running_train_task_instead_of_superseding_it(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg")
    gate = package / "gate"
    os.mkfifo(gate)

    async def scenario() -> None:
        double = CombinerDouble(models={"m0": model_bytes(WEIGHTS, tmp_path)})
        try:
            async with connected(double, partial(settings_for, tmp_path)) as client:
                double.push(CLIENT_ID, train_task(CLIENT_ID, "m0", round_id="r2", correlation_id="train"))
                await started_train(package)
                double.push(CLIENT_ID, validate_task(CLIENT_ID, "m0", correlation_id="validate"))
                await asyncio.to_thread(gate.write_text, "go")
                update = await next_item(double.updates, client, "the train task's update")
                validation = await next_item(double.validations, client, "the validation after it")
        finally:
            _open_gate(gate)

        assert (update.correlation_id, validation.correlation_id) == ("train", "validate")
        assert double.statuses.empty()

    run(scenario())


GATED_VALIDATE_PY = """
import os
import sys
from pathlib import Path
from scaleoututil.helpers.helpers import get_helper, save_metrics

here = Path(__file__).parent
(here / "validate.pid").write_text(str(os.getpid()))
(here / "vgate").read_text()  # a fifo: blocks until the test writes to it
weights = get_helper("numpyhelper").load(sys.argv[1])
save_metrics({"weight_sum": float(sum(w.sum() for w in weights))}, sys.argv[2])
"""


def test_a_train_task_waits_for_the_running_validation_instead_of_superseding_it(tmp_path: Path) -> None:
    """An async session sends a client its next train task while it validates a version: the
    validation must finish (and be reported), not be abandoned."""
    package = make_package(tmp_path / "pkg")
    (package / "validate.py").write_text(GATED_VALIDATE_PY, encoding="utf-8")
    gate = package / "vgate"
    os.mkfifo(gate)

    async def scenario() -> None:
        double = CombinerDouble(models={"m0": model_bytes(WEIGHTS, tmp_path)})
        server, port = await start_combiner(double)
        try:
            with ApiDouble([assigned(port)]) as api:
                async with serving(EdgeClient(settings_for(tmp_path, api.url))) as client:
                    await next_item(double.streams_opened, client, "the task stream")
                    double.push(CLIENT_ID, validate_task(CLIENT_ID, "m0", correlation_id="validate"))
                    async with asyncio.timeout(WAIT):
                        while not (package / "validate.pid").exists():  # another process: no event
                            await asyncio.sleep(0.02)
                    double.push(CLIENT_ID, train_task(CLIENT_ID, "m0", round_id="v2", correlation_id="train"))
                    await asyncio.to_thread(gate.write_text, "go")
                    validation = await next_item(double.validations, client, "the validation")
                    update = await next_item(double.updates, client, "the train task's update after it")
        finally:
            _open_gate(gate)
            await server.stop(None)

        assert (validation.correlation_id, update.correlation_id) == ("validate", "train")
        assert double.statuses.empty()

    run(scenario())


class StallingCombiner(CombinerDouble):
    """Stalls the first Download or Upload (per ``stall``) for good; later ones work.

    A "queue" stall never admits the Download (no headers, as a combiner whose transfer slots stay
    busy); a "download" stall admits it (sends the headers) and then sends nothing. "upload queue" and
    "upload" do the same to the Upload: never admitted, or admitted and never answered.
    """

    def __init__(self, stall: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stall = stall

    async def _stall(self, kind: str) -> None:
        if self.stall == kind:
            self.stall = ""
            await asyncio.Event().wait()  # until the client gives up and cancels the call

    async def Download(
        self, request: scaleout_pb2.ModelRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[scaleout_pb2.FileChunk]:
        await self._stall("queue")
        if self.stall == "download":
            await context.send_initial_metadata(())
            await self._stall("download")
        async for chunk in super().Download(request, context):
            yield chunk

    async def Upload(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        await self._stall("upload queue")
        if self.stall == "upload":
            await context.send_initial_metadata(())
            await self._stall("upload")
        return await super().Upload(request_iterator, context)


@pytest.mark.parametrize(
    ("stall", "error"),
    [
        (
            "download",
            r"download of model m0 stalled: 0 bytes in [0-9.]+ s, slower than 1e\+09 bytes/s after 0\.5 s "
            r"\(client settings min_transfer_rate, rpc_deadline\)",
        ),
        (
            "queue",
            r"download of model m0 was not admitted within 0\.5 s: every transfer slot of the combiner "
            r"stayed busy \(client setting max_queue_wait, combiner setting max_transfers\)",
        ),
        (
            "upload queue",
            r"upload of update [0-9a-f]{32} was not admitted within 0\.5 s: every transfer slot of the "
            r"combiner stayed busy \(client setting max_queue_wait, combiner setting max_transfers\)",
        ),
        (
            "upload",
            r"upload of update [0-9a-f]{32} stalled: not done within [0-9.]+ s of its admission \(client "
            r"settings min_transfer_rate, rpc_deadline\)",
        ),
    ],
)
def test_a_stalled_transfer_fails_its_task_at_the_deadline_and_the_next_task_runs(
    tmp_path: Path, stall: str, error: str
) -> None:
    make_package(tmp_path / "pkg")

    async def scenario() -> None:
        double = StallingCombiner(stall, models={"m0": model_bytes(WEIGHTS, tmp_path)})
        server, port = await start_combiner(double)
        try:
            with ApiDouble([assigned(port)]) as api:
                settings = settings_for(
                    tmp_path, api.url, rpc_deadline=0.5, min_transfer_rate=1e9, max_queue_wait=0.5
                )
                async with serving(EdgeClient(settings)) as client:
                    await next_item(double.streams_opened, client, "the task stream")
                    double.push(CLIENT_ID, train_task(CLIENT_ID, "m0", correlation_id="stalled"))
                    double.push(CLIENT_ID, train_task(CLIENT_ID, "m0", correlation_id="next"))
                    status = await next_item(double.statuses, client, "the failure report")
                    update = await next_item(double.updates, client, "the next task's update")
        finally:
            await server.stop(None)

        report = json.loads(status.status)
        assert report["correlation_id"] == "stalled"
        assert re.fullmatch(error, report["error"]), report["error"]
        assert update.correlation_id == "next"

    run(scenario())


def test_a_task_whose_connection_closes_is_abandoned_and_the_client_serves_the_next_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    package = make_package(tmp_path / "pkg")
    gate = package / "gate"
    os.mkfifo(gate)

    async def scenario() -> None:
        first = CombinerDouble(models={"m0": model_bytes(WEIGHTS, tmp_path)})
        server, port = await start_combiner(first)
        with ApiDouble([assigned(port)]) as api:
            settings = settings_for(tmp_path, api.url, reconnect_attempts=1000)
            async with serving(EdgeClient(settings)) as client:
                await next_item(first.streams_opened, client, "the first task stream")
                first.push(CLIENT_ID, train_task(CLIENT_ID, "m0", round_id="r1", correlation_id="cut"))
                stuck = await started_train(package)
                gate.unlink()
                await server.stop(None)  # the combiner crashes mid-task
                second = CombinerDouble(models={"m1": model_bytes(WEIGHTS, tmp_path)})
                server, _ = await start_combiner(second, port)
                try:
                    await next_item(second.streams_opened, client, "a task stream to the restarted combiner")
                    second.push(CLIENT_ID, train_task(CLIENT_ID, "m1", round_id="r1", correlation_id="after"))
                    update = await next_item(second.updates, client, "the update after the restart")
                    assert not is_running(stuck), "the abandoned entry point still runs"
                    status = await next_item(
                        second.statuses, client, "the abandonment, reported on reconnect"
                    )
                finally:
                    _open_gate(gate)
                    await server.stop(None)
            assert update.correlation_id == "after"
            report = json.loads(status.status)
            assert (report["correlation_id"], report["round_id"]) == ("cut", "r1")
            assert report["error"] == (
                "task abandoned by the client: the connection to combiner combiner it came on closed"
            )

    with caplog.at_level(logging.INFO):
        run(scenario())
    messages = [r.getMessage() for r in caplog.records]
    assert (
        "train task cut (round r1) abandoned: the connection to combiner combiner it came on closed"
        in messages
    )
    lost = [m for m in messages if m.startswith("combiner combiner closed the connection")]
    assert lost and lost[0].endswith("s") and "; reconnecting in " in lost[0], messages
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert not [m for m in messages if "a bug in the client" in m]
