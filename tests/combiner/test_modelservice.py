"""ModelService: uploads and downloads in chunks."""

import asyncio
import sys
from collections.abc import Callable

import grpc
import numpy as np
import pytest

from scaleout.client.model_transfer import Pace, TransferError, download_model, upload_model
from scaleout.combiner.spool import MAX_UNCLAIMED, MEMORY_BUDGET
from scaleout.proto import scaleout_pb2 as pb
from scaleout.proto import scaleout_pb2_grpc as rpc
from tests.combiner.driver import (
    WAIT,
    TestClient,
    address,
    clients,
    controller,
    npz_bytes,
    put_seed,
    running_combiner,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

MIB = 1024 * 1024


async def test_upload_over_the_size_bound_is_resource_exhausted_and_leaves_nothing(tmp_path):
    async with running_combiner(tmp_path, max_model_size=3 * 1024 * 1024) as combiner:
        client = TestClient(address(combiner), "a")
        try:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await client.upload(b"x" * (4 * 1024 * 1024), chunk=1024 * 1024)
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--max-model-size of 3145728 bytes" in raised.value.details()
            assert list((tmp_path / "work" / "updates").iterdir()) == []
            assert await client.upload(b"y" * (3 * 1024 * 1024))  # at the bound is fine
        finally:
            await client.close()


async def test_a_client_with_max_unclaimed_uploads_is_refused_the_next_one(tmp_path):
    async with running_combiner(tmp_path) as combiner:
        client = TestClient(address(combiner), "a")
        try:
            for _ in range(MAX_UNCLAIMED):
                assert await client.upload(b"x")
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await client.upload(b"x")
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert raised.value.details().startswith(f"client a already has {MAX_UNCLAIMED} uploads no ")
            assert len(combiner.spool) == MAX_UNCLAIMED
        finally:
            await client.close()


async def test_upload_with_an_unsafe_model_id_is_invalid_argument(tmp_path):
    async with running_combiner(tmp_path) as combiner:
        client = TestClient(address(combiner), "a")
        try:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await client.upload(b"data", update_id="../escape")
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "model-id metadata: invalid id '../escape'" in raised.value.details()
        finally:
            await client.close()


async def test_download_of_a_model_not_staged_is_not_found(tmp_path):
    async with running_combiner(tmp_path) as combiner:
        client = TestClient(address(combiner), "a")
        try:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await client.download("no-such-model")
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        finally:
            await client.close()


async def test_download_streams_the_staged_model_in_chunks(tmp_path):
    seed = [np.arange(3 * 1024 * 1024, dtype=np.float32)]  # 12 MiB: several chunks
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a") as (a,),
        controller(combiner) as ctl,
    ):
        model_id = put_seed(combiner, seed)
        round_task = ctl.start_round(model_id=model_id, round_timeout=0.2)
        task = await a.next_task()
        # a channel with gRPC's default 4 MiB receive limit still takes every chunk
        async with grpc.aio.insecure_channel(address(combiner)) as channel:
            call = rpc.ModelServiceStub(channel).Download(
                pb.ModelRequest(model_id=task.model_id), timeout=WAIT
            )
            sizes = [len(chunk.data) async for chunk in call]
        # every chunk but the last within the 1-4 MiB wire contract
        assert all(1024 * 1024 <= size <= 4 * 1024 * 1024 for size in sizes[:-1])
        assert len(sizes) > 1 and sum(sizes) == len(npz_bytes(seed))
        await asyncio.wait_for(round_task, WAIT)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Yield to the combiner, in this process, until ``condition`` holds; fail naming ``what`` at WAIT."""
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


async def test_a_download_beyond_max_transfers_waits_for_a_slot_and_then_completes(tmp_path):
    async with running_combiner(tmp_path, max_transfers=1) as combiner:
        model = [np.arange(8 * 1024 * 1024, dtype=np.float32)]  # 32 MB: more than the windows hold
        model_id = put_seed(combiner, model)
        await combiner.staged.stage(model_id)
        first, second = TestClient(address(combiner), "a"), TestClient(address(combiner), "b")
        try:
            holding = first.models.Download(pb.ModelRequest(model_id=model_id), timeout=WAIT)
            head = await holding.read()  # the first chunk; the rest waits for this client to read it
            await until(lambda: combiner.admission.active == 1, "the first download holds the only slot")
            waiting = asyncio.ensure_future(second.download(model_id))
            await until(lambda: combiner.admission.waiting == 1, "the second download waits for a slot")
            assert not waiting.done()

            chunks = [head.data]
            while (chunk := await holding.read()) is not grpc.aio.EOF:
                chunks.append(chunk.data)

            assert b"".join(chunks) == await waiting == npz_bytes(model)
            assert (combiner.admission.active, combiner.admission.waiting) == (0, 0)
        finally:
            await first.close()
            await second.close()


async def test_a_queued_download_keeps_its_pace_from_admission_and_a_never_admitted_one_fails(tmp_path):
    """The client's own download (client/model_transfer.py) against a combiner with one transfer slot."""
    async with running_combiner(tmp_path, max_transfers=1) as combiner:
        model = [np.arange(8 * 1024 * 1024, dtype=np.float32)]  # 32 MB: more than the windows hold
        model_id = put_seed(combiner, model)
        await combiner.staged.stage(model_id)
        holder, queued, refused = (TestClient(address(combiner), name) for name in ("a", "b", "c"))
        try:
            holding = holder.models.Download(pb.ModelRequest(model_id=model_id), timeout=WAIT)
            head = await holding.read()  # holds the only slot while it does not read on
            # With no bytes its pace allows 2.6 s (0.5 s + one 4 MiB chunk at 2 MB/s), but it may be queued
            # as long as WAIT.
            waiting = asyncio.ensure_future(
                download_model(queued.streams, model_id, tmp_path / "queued", Pace(0.5, 2e6, WAIT))
            )
            await until(lambda: combiner.admission.waiting == 1, "the queued download waits for the slot")
            with pytest.raises(TransferError) as raised:
                await download_model(refused.streams, model_id, tmp_path / "refused", Pace(0.5, 2e6, 3))
            assert str(raised.value) == (
                f"download of model {model_id} was not admitted within 3 s: every transfer slot of the "
                "combiner stayed busy (client setting max_queue_wait, combiner setting max_transfers)"
            )
            # The refused download gave up after 3 s queued, so the other one has waited longer than its
            # pace allows a transfer with no bytes: queued, it is not stalled.
            await until(lambda: combiner.admission.waiting == 1, "only the queued download still waits")
            assert not waiting.done()

            chunks = [head.data]
            while (chunk := await holding.read()) is not grpc.aio.EOF:
                chunks.append(chunk.data)

            assert await waiting == len(npz_bytes(model))
            assert (tmp_path / "queued").read_bytes() == b"".join(chunks) == npz_bytes(model)
            assert (combiner.admission.active, combiner.admission.waiting) == (0, 0)
        finally:
            for client in (holder, queued, refused):
                await client.close()


async def test_an_upload_sends_nothing_until_admitted_and_a_never_admitted_one_fails(tmp_path):
    """The client's own upload (client/model_transfer.py) against a combiner with one transfer slot:
    while a download holds it, an upload is not read (no byte reaches the spool), then goes through."""
    async with running_combiner(tmp_path, max_transfers=1) as combiner:
        model = [np.arange(8 * 1024 * 1024, dtype=np.float32)]  # 32 MB: more than the windows hold
        model_id = put_seed(combiner, model)
        await combiner.staged.stage(model_id)
        update = tmp_path / "update.npz"
        update.write_bytes(b"u" * (3 * 1024 * 1024 + 5))
        holder, queued, refused = (TestClient(address(combiner), name) for name in ("a", "b", "c"))
        try:
            holding = holder.models.Download(pb.ModelRequest(model_id=model_id), timeout=WAIT)
            await holding.read()  # holds the only slot while it does not read on
            waiting = asyncio.ensure_future(
                upload_model(queued.streams, update, "u1", "b", 1024 * 1024, Pace(0.5, 2e6, WAIT))
            )
            await until(lambda: combiner.admission.waiting == 1, "the queued upload waits for the slot")
            with pytest.raises(TransferError) as raised:
                await upload_model(refused.streams, update, "u2", "c", 1024 * 1024, Pace(0.5, 2e6, 3))
            assert str(raised.value) == (
                "upload of update u2 was not admitted within 3 s: every transfer slot of the combiner "
                "stayed busy (client setting max_queue_wait, combiner setting max_transfers)"
            )
            await until(lambda: combiner.admission.waiting == 1, "only the queued upload still waits")
            assert not waiting.done()
            assert list((tmp_path / "work" / "updates").iterdir()) == []  # not one byte read yet

            holding.cancel()
            assert await waiting == update.stat().st_size
            spooled = combiner.spool.claim("u1", "b")
            assert spooled is not None and spooled.path.read_bytes() == update.read_bytes()
            assert combiner.spool.claim("u2", "c") is None
            assert (combiner.admission.active, combiner.admission.waiting) == (0, 0)
        finally:
            for client in (holder, queued, refused):
                await client.close()


async def test_an_upload_is_not_admitted_while_held_updates_fill_the_memory_budget(tmp_path):
    """16 unnamed 4 MiB updates fill the spool's 64 MiB: the next upload waits for room before its
    headers, holding no transfer slot, and once a ModelUpdate's fold frees room it is held, not spilled."""
    assert MEMORY_BUDGET == 64 * MIB
    async with running_combiner(tmp_path) as combiner:
        senders = [TestClient(address(combiner), name) for name in ("a", "b", "c", "d", "e")]
        try:
            held = [
                await client.upload(b"h" * 4 * MIB, chunk=4 * MIB) for client in senders[:4] for _ in range(4)
            ]
            assert combiner.spool.held_bytes == MEMORY_BUDGET
            update = tmp_path / "update.npz"
            update.write_bytes(b"u" * 4 * MIB)
            waiting = asyncio.ensure_future(
                upload_model(senders[4].streams, update, "u17", "e", 4 * MIB, Pace(0.5, 2e6, WAIT))
            )
            await until(lambda: combiner.spool.waiting_for_room == 1, "the upload waits for room")
            assert (combiner.admission.active, combiner.admission.waiting) == (0, 0)
            assert not waiting.done()

            combiner.spool.release(combiner.spool.claim(held[0], "a"))  # as a fold does
            assert await waiting == 4 * MIB
            spooled = combiner.spool.claim("u17", "e")
            assert spooled is not None and spooled.data == update.read_bytes()
            assert list((tmp_path / "work" / "updates").iterdir()) == []  # nothing spilled
        finally:
            for client in senders:
                await client.close()


async def test_a_queued_download_whose_task_is_cancelled_leaves_the_queue(tmp_path):
    async with running_combiner(tmp_path, max_transfers=1) as combiner:
        model = [np.arange(8 * 1024 * 1024, dtype=np.float32)]  # 32 MB: more than the windows hold
        model_id = put_seed(combiner, model)
        await combiner.staged.stage(model_id)
        holder, queued = TestClient(address(combiner), "a"), TestClient(address(combiner), "b")
        try:
            holding = holder.models.Download(pb.ModelRequest(model_id=model_id), timeout=WAIT)
            await holding.read()  # holds the only slot
            waiting = asyncio.ensure_future(
                download_model(queued.streams, model_id, tmp_path / "queued", Pace(0.5, 1e9, WAIT))
            )
            await until(lambda: combiner.admission.waiting == 1, "the download waits for the slot")
            waiting.cancel()  # as a task superseded by a newer round's
            await until(lambda: combiner.admission.waiting == 0, "the cancelled download left the queue")
            holding.cancel()
            await until(lambda: combiner.admission.active == 0, "the slot is free again")
        finally:
            await holder.close()
            await queued.close()


async def test_an_upload_of_non_canonical_file_chunks_is_spooled_byte_exact(tmp_path):
    """Chunks with a field the combiner does not know, or data given twice (the last counts), are
    parsed as protobuf would: the hand-parsed fast path must not take them."""
    raw_chunks = [
        pb.FileChunk(data=b"ab").SerializeToString() + b"\x10\x05",
        pb.FileChunk(data=b"lost").SerializeToString() + pb.FileChunk(data=b"cd").SerializeToString(),
        pb.FileChunk(data=b"ef").SerializeToString(),
    ]
    async with running_combiner(tmp_path) as combiner:
        async with grpc.aio.insecure_channel(address(combiner)) as channel:
            upload = channel.stream_unary(
                "/scaleout.ModelService/Upload",
                request_serializer=lambda raw: raw,
                response_deserializer=pb.ModelResponse.FromString,
            )
            metadata = (("model-id", "u1"), ("client-id", "a"))
            response = await upload(iter(raw_chunks), metadata=metadata, timeout=WAIT)
        assert response.status == pb.OK
        spooled = combiner.spool.claim("u1", "a")
        assert spooled is not None and spooled.path.read_bytes() == b"abcdef" and spooled.size == 6


async def test_a_small_staged_model_is_read_from_disk_once_for_every_download(tmp_path):
    """Downloads of a small model share its chunks in memory: the file is opened once, not per client."""
    opened: list[str] = []

    def audit(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], str | bytes) and str(args[0]).endswith(".npz"):
            opened.append(str(args[0]))

    sys.addaudithook(audit)  # audit hooks cannot be removed; this one only records paths
    seed = [np.arange(600_000, dtype=np.float32)]  # 2.4 MB: three chunks
    async with running_combiner(tmp_path) as combiner:
        model_id = put_seed(combiner, seed)
        staged = await combiner.staged.stage(model_id)
        downloaders = [TestClient(address(combiner), f"c{i}") for i in range(5)]
        try:
            opened.clear()
            got = await asyncio.gather(*(c.download(model_id) for c in downloaders))
        finally:
            for client in downloaders:
                await client.close()
        assert got == [npz_bytes(seed)] * 5
        assert opened.count(str(staged)) == 1
