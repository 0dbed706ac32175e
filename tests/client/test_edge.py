"""The edge client's task loop and connection handling, against a combiner double on loopback gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Coroutine
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from scaleout.client.edge import BUSY_MISSES, EdgeClient
from scaleout.client.settings import ClientSettings
from scaleout.errors import ScaleoutError
from scaleout.proto import scaleout_pb2
from tests.client.doubles import (
    NUM_EXAMPLES,
    WAIT,
    ApiDouble,
    CombinerDouble,
    assigned,
    connected,
    load_npz,
    make_package,
    model_bytes,
    next_item,
    serving,
    start_combiner,
    train_task,
    validate_task,
)

CLIENT_ID = "edge-1"
WEIGHTS = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1.5, -2.0], dtype=np.float64)]


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, 4 * WAIT))


def settings_for(tmp_path: Path, api_url: str, **overrides: Any) -> ClientSettings:
    values: dict[str, Any] = {
        "api_url": api_url,
        "work_dir": tmp_path / "work",
        "client_id": CLIENT_ID,
        "name": "edge one",
        "local_package": tmp_path / "pkg",
        "heartbeat_interval": 0.2,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        **overrides,
    }
    return ClientSettings(**values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def leftover_task_files(work_dir: Path) -> list[str]:
    return sorted(p.name for p in work_dir.iterdir() if p.name not in {"client_id", ".client.lock"})


def test_train_task_uploads_what_train_wrote_with_its_num_examples(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / f"{'ab' * 16}.npz-metadata").write_text("{}")  # left by a killed run

    async def scenario() -> None:
        double = CombinerDouble(models={"m0": model_bytes(WEIGHTS, tmp_path)})
        server, port = await start_combiner(double)
        try:
            with ApiDouble([assigned(port)]) as api:
                async with serving(EdgeClient(settings_for(tmp_path, api.url))) as client:
                    hello = await next_item(double.streams_opened, client, "the task stream")
                    task = train_task(CLIENT_ID, "m0")
                    double.push(CLIENT_ID, task)
                    update = await next_item(double.updates, client, "the model update")
                assert api.add_calls[0][0] == {"client_id": CLIENT_ID, "name": "edge one", "package": "local"}
        finally:
            await server.stop(None)

        assert hello.client_id == CLIENT_ID and json.loads(hello.data) == {"name": "edge one"}
        assert (update.client_id, update.model_id, update.correlation_id) == (CLIENT_ID, "m0", "c1")
        assert (update.round_id, update.session_id, update.config) == ("r1", "s1", task.data)
        data, call_metadata = double.uploads[update.model_update_id]
        assert call_metadata["client-id"] == CLIENT_ID
        for got, sent in zip(load_npz(data), WEIGHTS, strict=True):
            assert got.dtype == sent.dtype
            np.testing.assert_array_equal(got, sent + 1)
        # round_index came from the task's data, which train read from IN-metadata.
        assert json.loads(update.meta) == {"num_examples": NUM_EXAMPLES, "round_index": 3}
        assert (package / "startup.log").read_text() == "started\n"
        assert leftover_task_files(tmp_path / "work") == []

    run(scenario())


def test_validate_task_sends_the_metrics_validate_wrote(tmp_path: Path) -> None:
    make_package(tmp_path / "pkg")

    async def scenario() -> None:
        double = CombinerDouble(models={"m7": model_bytes(WEIGHTS, tmp_path)})
        async with connected(double, partial(settings_for, tmp_path)) as client:
            double.push(CLIENT_ID, validate_task(CLIENT_ID, "m7"))
            validation = await next_item(double.validations, client, "the validation")

        assert (validation.client_id, validation.model_id) == (CLIENT_ID, "m7")
        assert (validation.correlation_id, validation.session_id) == ("v1", "s1")
        expected_sum = float(sum(w.sum() for w in WEIGHTS))
        assert json.loads(validation.data) == {"weight_sum": expected_sum, "arrays": 2}
        assert leftover_task_files(tmp_path / "work") == []

    run(scenario())


def test_crashing_train_reports_its_stderr_tail_and_the_client_serves_the_next_task(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg")
    (package / "crash").touch()  # the test package's train exits 3 once, then works

    async def scenario() -> None:
        double = CombinerDouble(models={"m0": model_bytes(WEIGHTS, tmp_path)})
        async with connected(double, partial(settings_for, tmp_path)) as client:
            double.push(CLIENT_ID, train_task(CLIENT_ID, "m0", correlation_id="first"))
            double.push(CLIENT_ID, train_task(CLIENT_ID, "m0", correlation_id="second"))
            status = await next_item(double.statuses, client, "the failure status")
            update = await next_item(double.updates, client, "the next task's update")

        assert status.client_id == CLIENT_ID
        assert status.type == "Scaleout_ModelUpdate"
        assert status.log_level == scaleout_pb2.LogLevel.ERROR
        report = json.loads(status.status)
        assert (report["correlation_id"], report["round_id"], report["session_id"]) == ("first", "r1", "s1")
        assert "exited with code 3" in report["error"]
        assert "loading the data\nboom: the local data is gone" in report["error"]
        assert update.correlation_id == "second"
        assert double.statuses.empty()
        assert leftover_task_files(tmp_path / "work") == []

    run(scenario())


def test_heartbeats_continue_while_an_entry_point_runs(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg")
    gate = package / "gate"
    os.mkfifo(gate)  # train blocks reading it until the test writes

    async def scenario() -> None:
        double = CombinerDouble(models={"m0": model_bytes(WEIGHTS, tmp_path)})
        try:
            async with connected(double, partial(settings_for, tmp_path)) as client:
                double.push(CLIENT_ID, train_task(CLIENT_ID, "m0"))
                while not double.heartbeats.empty():
                    double.heartbeats.get_nowait()
                for _ in range(3):
                    await next_item(double.heartbeats, client, "a heartbeat during training")
                assert double.updates.empty(), "train finished although its gate is closed"
                await asyncio.to_thread(gate.write_text, "go")
                update = await next_item(double.updates, client, "the update after the gate opened")
        finally:
            _open_gate(gate)
        assert json.loads(update.meta)["num_examples"] == NUM_EXAMPLES

    run(scenario())


def _open_gate(gate: Path) -> None:
    """Release a train still blocked on the fifo if the test failed early (no reader: nothing to do)."""
    with contextlib.suppress(OSError):
        fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"go")
        os.close(fd)


def test_client_opens_a_new_task_stream_after_the_combiner_restarts(tmp_path: Path) -> None:
    make_package(tmp_path / "pkg")

    async def scenario() -> None:
        first = CombinerDouble()
        server, port = await start_combiner(first)
        with ApiDouble([assigned(port)]) as api:
            settings = settings_for(tmp_path, api.url, reconnect_attempts=1000)
            async with serving(EdgeClient(settings)) as client:
                await next_item(first.streams_opened, client, "the first task stream")
                await server.stop(None)
                second = CombinerDouble(models={"m1": model_bytes(WEIGHTS, tmp_path)})
                server, _ = await start_combiner(second, port)
                try:
                    hello = await next_item(
                        second.streams_opened, client, "a task stream to the restarted combiner"
                    )
                    second.push(CLIENT_ID, train_task(CLIENT_ID, "m1"))
                    update = await next_item(second.updates, client, "an update to the restarted combiner")
                finally:
                    await server.stop(None)
            assert hello.client_id == CLIENT_ID
            assert update.model_id == "m1"
            assert len(api.add_calls) == 1, "the client should have reconnected, not asked the API again"

    run(scenario())


def test_client_asks_the_api_again_after_repeated_connection_failures(tmp_path: Path) -> None:
    make_package(tmp_path / "pkg")

    async def scenario() -> None:
        live = CombinerDouble()
        server, port = await start_combiner(live)
        try:
            with ApiDouble([assigned(free_port(), name="gone"), assigned(port, name="live")]) as api:
                settings = settings_for(tmp_path, api.url, reconnect_attempts=2)
                async with serving(EdgeClient(settings)) as client:
                    hello = await next_item(live.streams_opened, client, "a task stream to the new combiner")
                assert [call[0]["client_id"] for call in api.add_calls] == [CLIENT_ID, CLIENT_ID]
        finally:
            await server.stop(None)
        assert hello.client_id == CLIENT_ID

    run(scenario())


class BusyCombiner(CombinerDouble):
    """A combiner whose event loop cannot answer heartbeats in time (thousands of clients connecting
    at once): its first ``LATE`` heartbeats are never answered; the connection itself is up."""

    LATE = BUSY_MISSES - 1

    async def SendHeartbeat(self, request: scaleout_pb2.Heartbeat, context: Any) -> scaleout_pb2.Response:
        self.seen = getattr(self, "seen", 0) + 1
        if self.seen <= self.LATE:
            self.heartbeats.put_nowait(request)
            await asyncio.Event().wait()  # cancelled by gRPC when the client's deadline passes
        return await super().SendHeartbeat(request, context)


def test_heartbeats_out_of_time_on_a_live_connection_keep_the_task_stream(tmp_path: Path) -> None:
    make_package(tmp_path / "pkg")

    async def scenario() -> None:
        busy = BusyCombiner(models={"m0": model_bytes(WEIGHTS, tmp_path)})
        server, port = await start_combiner(busy)
        try:
            with ApiDouble([assigned(port)]) as api:
                settings = settings_for(tmp_path, api.url, heartbeat_deadline=0.5)
                async with serving(EdgeClient(settings)) as client:
                    await next_item(busy.streams_opened, client, "the task stream")
                    for late in range(BusyCombiner.LATE):
                        await next_item(busy.heartbeats, client, f"unanswered heartbeat {late + 1}")
                    await next_item(busy.heartbeats, client, "the heartbeat after the missed ones")
                    busy.push(CLIENT_ID, train_task(CLIENT_ID, "m0"))
                    update = await next_item(busy.updates, client, "the update on the same stream")
                    assert busy.streams_opened.empty() and busy.streams_closed.empty(), "it reconnected"
                assert len(api.add_calls) == 1
        finally:
            await server.stop(None)
        assert update.model_id == "m0"

    run(scenario())


class RefusingCombiner(CombinerDouble):
    """A combiner that does not know this client."""

    async def TaskStream(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.streams_opened.put_nowait(request)
        await context.abort(grpc.StatusCode.NOT_FOUND, f"client {request.client_id} is not assigned here")
        yield  # an async generator, like the real servicer method


def test_client_asks_the_api_again_at_once_when_the_combiner_refuses_it(tmp_path: Path) -> None:
    make_package(tmp_path / "pkg")

    async def scenario() -> None:
        refusing, live = RefusingCombiner(), CombinerDouble()
        refusing_server, refusing_port = await start_combiner(refusing)
        live_server, live_port = await start_combiner(live)
        try:
            with ApiDouble([assigned(refusing_port), assigned(live_port)]) as api:
                settings = settings_for(tmp_path, api.url, reconnect_attempts=1000)
                async with serving(EdgeClient(settings)) as client:
                    await next_item(live.streams_opened, client, "a task stream to the live combiner")
        finally:
            await refusing_server.stop(None)
            await live_server.stop(None)
        assert refusing.streams_opened.qsize() == 1, "a refusal must not be retried on the same combiner"

    run(scenario())


def test_stop_cancels_the_task_stream_and_run_returns(tmp_path: Path) -> None:
    make_package(tmp_path / "pkg")

    async def scenario() -> None:
        double = CombinerDouble()
        server, port = await start_combiner(double)
        try:
            with ApiDouble([assigned(port)]) as api:
                async with serving(EdgeClient(settings_for(tmp_path, api.url))) as client:
                    await next_item(double.streams_opened, client, "the task stream")
                closed = await asyncio.wait_for(double.streams_closed.get(), WAIT)
        finally:
            await server.stop(None)
        assert closed == CLIENT_ID

    run(scenario())


def test_a_second_client_on_the_same_work_dir_is_refused(tmp_path: Path) -> None:
    make_package(tmp_path / "pkg")

    async def scenario() -> None:
        double = CombinerDouble()
        server, port = await start_combiner(double)
        try:
            with ApiDouble([assigned(port)]) as api:
                async with serving(EdgeClient(settings_for(tmp_path, api.url))) as client:
                    await next_item(double.streams_opened, client, "the task stream")
                    other = EdgeClient(settings_for(tmp_path, api.url, client_id="edge-2"))
                    with pytest.raises(ScaleoutError, match="another client runs with work dir"):
                        await other.run(handle_signals=False)
        finally:
            await server.stop(None)

    run(scenario())
