"""The official Scaleout Edge client's RPCs at the combiner: polling, Announce, its update container,
its metrics and telemetry. Driven over real gRPC the way scaleout==1.1.0 calls them (its source:
scaleout/client/task_receiver.py, grpc_handler.py, scaleoututil/utils/model.py)."""

import asyncio
import io
import json
import uuid
import zipfile

import grpc
import numpy as np
import pytest

from scaleout.proto import scaleout_pb2 as pb
from tests.combiner.driver import (
    WAIT,
    TestClient,
    address,
    clients,
    controller,
    load_model,
    npz_bytes,
    put_seed,
    running_combiner,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


def container(arrays: list[np.ndarray] | None, metadata: dict | None = None) -> bytes:
    """An update as ScaleoutModel writes it: metadata.json + training_model.bin, deflated; the official
    numpyhelper writes training_model.bin with np.savez_compressed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "metadata.json", json.dumps(metadata or {"helper_type": "numpyhelper", "_version": 2})
        )
        if arrays is not None:
            weights = io.BytesIO()
            np.savez_compressed(weights, **{str(i): a for i, a in enumerate(arrays)})
            archive.writestr("training_model.bin", weights.getvalue())
    return buffer.getvalue()


class Poller(TestClient):
    """A client that polls like the official one instead of opening a task stream."""

    interval_ms = 100  # what it reports; the official client polls every 5000 ms by default

    async def poll(self, *reports: pb.ActivityReport, skip: bool = False) -> list[pb.TaskRequest]:
        report = pb.ClientReport(
            client_id=self.client_id,
            poll_interval_ms=self.interval_ms,
            reports=reports,
            skip_polling_tasks=skip,
        )
        directive = await self.client.PollAndReportAsync(report, timeout=WAIT)
        return list(directive.tasks)

    async def poll_until_task(self) -> pb.TaskRequest:
        async with asyncio.timeout(WAIT):
            while not (tasks := await self.poll()):
                await asyncio.sleep(0.05)  # the official client polls every 5 s; a test need not wait
        assert len(tasks) == 1
        return tasks[0]

    async def train_in_container(self, task: pb.TaskRequest, arrays: list[np.ndarray], count: int) -> str:
        await self.download(task.model_id)
        update_id = str(uuid.uuid4())  # the official client's ids have dashes
        await self.upload(container(arrays), update_id=update_id)
        meta = {"training_metadata": {"num_examples": count, "epochs": 1}, "exec_training": 0.1}
        return await self.send_update(task, update_id, meta)


async def test_a_poller_and_a_streamer_train_in_one_round_weighted_by_their_examples(tmp_path):
    seed = [np.zeros(4, dtype=np.float32)]
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "streamer") as (streamer,),
        controller(combiner) as ctl,
    ):
        poller = Poller(address(combiner), "poller")
        try:
            assert await poller.poll() == []  # online from its first poll; nothing to do yet
            assert {"streamer", "poller"} <= set(combiner.registry.streaming())
            round_task = ctl.start_round(model_id=put_seed(combiner, seed))

            streamed, polled = await streamer.next_task(), await poller.poll_until_task()

            assert polled.type == "Scaleout_ModelUpdate" and polled.model_id == streamed.model_id
            assert json.loads(polled.data)["client_settings"] == {}  # the official client reads this key
            assert await streamer.train(streamed, [np.full(4, 1.0, np.float32)], 1) == "accepted"
            assert await poller.train_in_container(polled, [np.full(4, 4.0, np.float32)], 3) == "accepted"
            result = await asyncio.wait_for(round_task, WAIT)
        finally:
            await poller.close()
        assert result.ok, result.error
        assert load_model(combiner, result.model_id, tmp_path)[0].tolist() == [3.25] * 4  # (1*1 + 3*4) / 4
        assert {c.client_id: (c.num_examples, c.delivery) for c in result.clients} == {
            "streamer": (1, "stream"),
            "poller": (3, "poll"),
        }


async def test_a_poller_that_stops_polling_goes_offline_and_leaves_its_round(tmp_path):
    async with (
        running_combiner(tmp_path, poll_online_seconds=0.3) as combiner,
        clients(combiner, "streamer") as (streamer,),
        controller(combiner) as ctl,
    ):
        poller = Poller(address(combiner), "quiet")
        try:
            await poller.poll()
            round_task = ctl.start_round(model_id=put_seed(combiner, [np.zeros(2)]))
            await poller.poll_until_task()  # then it never polls again
            assert await streamer.train(await streamer.next_task(), [np.ones(2)], 1) == "accepted"
            result = await asyncio.wait_for(round_task, WAIT)
        finally:
            await poller.close()
        assert result.ok and [c.client_id for c in result.clients] == ["streamer"]
        assert [r.client_id for r in result.rejected] == ["quiet"]
        assert "left round r1 before reporting" in result.rejected[0].reason
        assert not combiner.registry.is_online("quiet")


async def test_a_failed_task_in_a_poll_report_is_the_clients_report(tmp_path):
    async with running_combiner(tmp_path) as combiner, controller(combiner) as ctl:
        poller = Poller(address(combiner), "p")
        try:
            await poller.poll()
            round_task = ctl.start_round(model_id=put_seed(combiner, [np.zeros(2)]))
            task = await poller.poll_until_task()
            failed = pb.ActivityReport(
                node_id="p",
                correlation_id=task.correlation_id,
                status="FAILED",
                done=True,
                response=json.dumps({"error": "Train callback failed: out of memory"}),
            )
            await poller.poll(failed)
            result = await asyncio.wait_for(round_task, WAIT)
        finally:
            await poller.close()
        assert not result.ok
        assert [(r.client_id, r.reason) for r in result.rejected] == [
            ("p", "task failed on client p: Train callback failed: out of memory")
        ]


async def test_a_running_task_no_round_runs_any_more_is_interrupted(tmp_path):
    async with running_combiner(tmp_path) as combiner:
        poller = Poller(address(combiner), "p")
        try:
            running = pb.ActivityReport(node_id="p", correlation_id="gone-task", status="RUNNING")
            tasks = await poller.poll(running)
        finally:
            await poller.close()
        assert [(t.correlation_id, t.status) for t in tasks] == [("gone-task", "INTERRUPTED")]


async def test_announce_passes_the_version_check_and_disconnect_takes_the_client_offline(tmp_path):
    async with running_combiner(tmp_path) as combiner:
        poller = Poller(address(combiner), "p")
        try:
            check = pb.ClientAnnounceRequest(
                client_id="p", type="VersionCheck", parameters=json.dumps({"client-version": "1.1.0"})
            )
            answer = await poller.client.Announce(check, timeout=WAIT)
            assert json.loads(answer.parameters) == {"success": True, "version": "0.1.0"}

            await poller.client.Announce(
                pb.ClientAnnounceRequest(client_id="p", type="Connect"), timeout=WAIT
            )
            assert combiner.registry.is_online("p")
            await poller.client.Announce(
                pb.ClientAnnounceRequest(client_id="p", type="Disconnect"), timeout=WAIT
            )
            assert not combiner.registry.is_online("p")
            await combiner.registry.flush()
            events = combiner.statestore.events.list(sort_key="timestamp").items
            assert [(e.type, e.client_id, e.combiner_id) for e in events] == [
                ("client_connected", "p", "combiner-test"),
                ("client_disconnected", "p", "combiner-test"),
            ]

            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await poller.client.Announce(
                    pb.ClientAnnounceRequest(client_id="p", type="Hello"), timeout=WAIT
                )
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "'Hello' is not one of Connect, Disconnect, VersionCheck" in raised.value.details()
        finally:
            await poller.close()


async def test_a_container_without_training_model_bin_is_refused_naming_it(tmp_path):
    async with running_combiner(tmp_path) as combiner:
        poller = Poller(address(combiner), "p")
        try:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await poller.upload(container(None))
        finally:
            await poller.close()
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.details() == (
            "the update is a ZIP container (metadata.json) without training_model.bin (entries: "
            "metadata.json); the weights must be in training_model.bin, as "
            "ScaleoutModel.from_training_model writes them"
        )
        assert list((tmp_path / "work" / "updates").iterdir()) == []


async def test_a_container_with_the_wrong_shape_is_rejected_for_its_shape(tmp_path):
    async with running_combiner(tmp_path) as combiner, controller(combiner) as ctl:
        poller = Poller(address(combiner), "p")
        try:
            await poller.poll()
            round_task = ctl.start_round(model_id=put_seed(combiner, [np.zeros(2), np.zeros(3)]))
            task = await poller.poll_until_task()
            answer = await poller.train_in_container(task, [np.zeros(5), np.zeros(3)], 2)
            result = await asyncio.wait_for(round_task, WAIT)
        finally:
            await poller.close()
        assert answer == "rejected: array 0 has shape (5,), the global model's has (2,)"
        assert not result.ok


async def test_model_metrics_are_stored_as_validations_of_the_client(tmp_path):
    async with running_combiner(tmp_path) as combiner:
        poller = Poller(address(combiner), "p")
        try:
            metric = pb.ModelMetric(client_id="p", model_id="m1", round_id="r1", session_id="s1")
            metric.metrics.add(key="loss", value=0.5)
            metric.step.value = 3
            assert (await poller.client.SendModelMetric(metric, timeout=WAIT)).response == "stored"
            metric.metrics.add(key="acc", value=float("nan"))
            refused = await poller.client.SendModelMetric(metric, timeout=WAIT)
        finally:
            await poller.close()
        assert refused.response == "not stored: metric 'acc' is nan; only finite numbers are stored"
        stored = combiner.statestore.validations.list().items
        assert [(v.client_id, v.model_id, v.session_id, v.round_id, v.metrics) for v in stored] == [
            ("p", "m1", "s1", "r1", {"loss": 0.5, "step": 3})
        ]


async def test_metrics_beyond_the_clients_rate_are_acknowledged_but_not_stored(tmp_path):
    async with running_combiner(tmp_path) as combiner:
        combiner.telemetry._limiter._rate = 0.0  # no refill: exactly the burst is stored
        poller = Poller(address(combiner), "p")
        try:
            metric = pb.ModelMetric(client_id="p", model_id="m1")
            metric.metrics.add(key="loss", value=1.0)
            answers = [
                (await poller.client.SendModelMetric(metric, timeout=WAIT)).response for _ in range(52)
            ]
        finally:
            await poller.close()
        assert answers.count("stored") == 50
        assert answers[-1] == "not stored: this client sends metrics faster than the combiner stores them"
        assert combiner.statestore.validations.count() == 50


async def test_telemetry_is_acknowledged_record_by_record_and_not_kept(tmp_path):
    async with running_combiner(tmp_path) as combiner:
        poller = Poller(address(combiner), "p")
        try:
            records = [
                pb.TelemetryRecord(telemetry_id=f"t{i}", client_id="p", key="cpu", payload='{"value": 1}')
                for i in range(3)
            ]
            records.append(pb.TelemetryRecord(telemetry_id="big", client_id="p", payload="x" * 70_000))
            call = poller.client.StreamTelemetryRecord(iter(records), metadata=(("client-id", "p"),))
            acks = [list(ack.record_ids) async for ack in call]
            message = pb.TelemetryMessage(client_id="p")
            message.telemetries.add(key="cpu", value=3.0)
            answer = await poller.client.SendTelemetryMessage(message, timeout=WAIT)
            backlog = await poller.client.SendBacklogReport(pb.BacklogReport(client_id="p"), timeout=WAIT)
        finally:
            await poller.close()
        assert acks == [["t0"], ["t1"], ["t2"], ["big"]]  # an oversized record is acked, so not resent
        assert (answer.response, backlog.response) == ("acknowledged", "acknowledged")
        assert (combiner.telemetry.acknowledged, combiner.telemetry.refused) == (5, 1)
        assert combiner.statestore.validations.count() == 0


async def test_a_container_inflating_beyond_the_model_size_bound_is_refused_before_it_is_written(tmp_path):
    buffer = io.BytesIO()  # training_model.bin: 4 MiB of zeros, a few KiB deflated
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", "{}")
        archive.writestr("training_model.bin", npz_bytes([np.zeros(1024 * 1024, dtype=np.float32)]))
    packed = buffer.getvalue()
    assert len(packed) < 1024 * 1024
    async with running_combiner(tmp_path, max_model_size=1024 * 1024) as combiner:
        poller = Poller(address(combiner), "p")
        try:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await poller.upload(packed)
        finally:
            await poller.close()
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.details() == (
            "training_model.bin of the update's ZIP container is larger than the combiner's "
            "--max-model-size of 1048576 bytes"
        )
        assert list((tmp_path / "work" / "updates").iterdir()) == []


async def test_a_container_whose_metadata_is_not_json_is_refused_naming_it(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", "{not json")
        archive.writestr("training_model.bin", npz_bytes([np.zeros(2)]))
    async with running_combiner(tmp_path) as combiner:
        poller = Poller(address(combiner), "p")
        try:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await poller.upload(buffer.getvalue())
        finally:
            await poller.close()
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.details().startswith("metadata.json of the update's ZIP container is not JSON: ")


async def test_a_record_stream_beyond_its_burst_is_paced_not_dropped(tmp_path):
    async with running_combiner(tmp_path) as combiner:
        # 2 at once, then one per 0.2 s: the records after the burst are queued on the stream already,
        # so each of them waits for its token (0.6 s in all)
        combiner.telemetry._stream_burst, combiner.telemetry._stream_rate = 2, 5.0
        poller = Poller(address(combiner), "p")
        try:
            records = [pb.AttributeRecord(attribute_id=f"a{i}", client_id="p") for i in range(5)]
            call = poller.client.StreamAttributeRecord(iter(records), metadata=(("client-id", "p"),))
            acks = [list(ack.record_ids) async for ack in call]
        finally:
            await poller.close()
        assert acks == [[f"a{i}"] for i in range(5)]
        assert (combiner.telemetry.acknowledged, combiner.telemetry.paced) == (5, 3)


async def test_a_client_reporting_a_long_poll_interval_stays_online_for_three_of_them(tmp_path):
    async with running_combiner(tmp_path, poll_online_seconds=0.3) as combiner:
        poller = Poller(address(combiner), "slow")
        poller.interval_ms = 60_000
        try:
            await poller.poll()
            window = combiner.pollers._pollers["slow"].expiry.when() - asyncio.get_running_loop().time()
        finally:
            await poller.close()
        assert 170 < window <= 180  # 3 x 60 s, not the 0.3 s configured for clients polling more often
