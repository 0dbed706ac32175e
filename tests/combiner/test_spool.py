"""UpdateSpool: a one-chunk upload is held in memory within the budget; anything else goes to disk.
An upload waits, bounded, for room in the budget before it is admitted."""

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scaleout.combiner.containers import is_container
from scaleout.combiner.spool import (
    MAX_UNCLAIMED,
    ROOM_WAIT,
    SpooledUpdate,
    TooManyUploads,
    UpdateSpool,
    UploadTooLarge,
)

pytestmark = pytest.mark.anyio

MB = 1024 * 1024


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def files(spool_dir: Path) -> list[str]:
    return sorted(p.name for p in spool_dir.iterdir())


async def test_a_one_chunk_upload_is_held_in_memory_and_release_frees_it(tmp_path):
    spool = UpdateSpool(tmp_path, max_size=10 * MB, memory_budget=2 * MB)
    update = await spool.receive("u1", "a", chunks(b"x" * MB))
    assert (update.size, update.data, spool.held_bytes, len(spool)) == (MB, b"x" * MB, MB, 1)
    assert files(tmp_path) == []  # no file written
    assert update.source().read() == b"x" * MB

    claimed = spool.claim("u1", "a")
    assert claimed is update and len(spool) == 0
    spool.release(claimed)
    assert spool.held_bytes == 0


async def test_uploads_past_the_memory_budget_or_of_several_chunks_go_to_disk(tmp_path):
    spool = UpdateSpool(tmp_path, max_size=10 * MB, memory_budget=MB + 1)
    held = await spool.receive("u1", "a", chunks(b"1" * MB))
    over_budget = await spool.receive("u2", "b", chunks(b"2" * MB))
    several = await spool.receive("u3", "c", chunks(b"3" * 10, b"4" * 20, b"5" * 30))
    empty = await spool.receive("u4", "d", chunks())

    assert held.data is not None and spool.held_bytes == MB  # the empty one is held too, with 0 bytes
    assert over_budget.data is None and over_budget.path.read_bytes() == b"2" * MB
    assert several.data is None and several.path.read_bytes() == b"3" * 10 + b"4" * 20 + b"5" * 30
    assert (empty.data, empty.size) == (b"", 0)
    assert files(tmp_path) == ["u2.npz", "u3.npz"]

    assert spool.discard_all() == 4
    assert (files(tmp_path), spool.held_bytes, len(spool)) == ([], 0, 0)


async def test_on_disk_writes_a_held_update_once_and_moves_its_bytes_off_the_budget(tmp_path):
    spool = UpdateSpool(tmp_path, max_size=10 * MB, memory_budget=2 * MB)
    update = await spool.receive("u1", "a", chunks(b"z" * 100))
    on_disk = await spool.on_disk(update)
    assert on_disk.data is None and on_disk.path.read_bytes() == b"z" * 100 and spool.held_bytes == 0
    assert spool.claim("u1", "a") is on_disk  # the spool hands out the file from now on
    assert await spool.on_disk(on_disk) is on_disk
    spool.release(on_disk)
    assert (files(tmp_path), spool.held_bytes) == ([], 0)


async def test_a_container_held_in_memory_is_recognised(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", "{}")
        archive.writestr("training_model.bin", b"npz")
    spool = UpdateSpool(tmp_path, max_size=10 * MB)
    update = await spool.receive("u1", "a", chunks(buffer.getvalue()))
    assert update.data is not None and is_container(update.source())
    plain = await spool.receive("u2", "a", chunks(b"not a zip"))
    assert not is_container(plain.source())


async def test_a_client_may_hold_at_most_max_unclaimed_uploads(tmp_path):
    spool = UpdateSpool(tmp_path, max_size=10 * MB)
    for n in range(MAX_UNCLAIMED):
        await spool.receive(f"a{n}", "a", chunks(b"x"))
    with pytest.raises(TooManyUploads) as raised:
        await spool.receive("a-next", "a", chunks(b"x"))
    assert str(raised.value) == (
        f"client a already has {MAX_UNCLAIMED} uploads no ModelUpdate has named yet; send SendModelUpdate "
        "for an upload before the next (unnamed ones go when their task ends)"
    )
    await spool.receive("b0", "b", chunks(b"x"))  # another client is not held up
    await spool.receive("anon", "", chunks(b"x"))  # nor an upload without a client id (open mode)

    spool.release(spool.claim("a0", "a"))  # a ModelUpdate named one: room for the next
    await spool.receive("a-next", "a", chunks(b"x"))
    with pytest.raises(TooManyUploads):
        await spool.receive("a-more", "a", chunks(b"x"))
    assert spool.discard_client("a") == MAX_UNCLAIMED  # its task ended
    await spool.receive("a-again", "a", chunks(b"x"))


async def test_a_failed_upload_does_not_count_against_its_client(tmp_path):
    spool = UpdateSpool(tmp_path, max_size=4)
    for n in range(MAX_UNCLAIMED + 1):
        with pytest.raises(UploadTooLarge):
            await spool.receive(f"big{n}", "a", chunks(b"12345"))
    for n in range(MAX_UNCLAIMED):
        await spool.receive(f"ok{n}", "a", chunks(b"1234"))


async def spooled(spool: UpdateSpool, update_id: str, data: bytes, bound: float = ROOM_WAIT) -> SpooledUpdate:
    """An upload as ModelService.Upload takes it: room in the budget first, then its bytes."""
    async with spool.room(bound):
        return await spool.receive(update_id, "a", chunks(data))


async def waiting(spool: UpdateSpool, count: int) -> None:
    for _ in range(10):  # turns of the loop: the uploads' tasks run up to their wait in one
        if spool.waiting_for_room == count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{spool.waiting_for_room} uploads wait for room, not {count}")


async def test_an_upload_waits_for_room_in_the_memory_budget_and_is_then_held_not_spilled(tmp_path):
    spool = UpdateSpool(tmp_path, max_size=10 * MB, memory_budget=2 * MB)
    first = await spooled(spool, "u1", b"1" * MB)
    await spooled(spool, "u2", b"2" * MB)
    assert (spool.held_bytes, spool.reserved_bytes) == (2 * MB, 0)

    third = asyncio.create_task(spooled(spool, "u3", b"3" * MB))
    await waiting(spool, 1)
    assert not third.done() and len(spool) == 2  # not admitted: none of its bytes read

    spool.release(spool.claim("u1", "a"))  # folded: its room goes to the waiting upload
    assert first.data is not None and spool.reserved_bytes == MB
    update = await third
    assert update.data == b"3" * MB and files(tmp_path) == []  # held, nothing spilled
    assert (spool.held_bytes, spool.reserved_bytes, spool.waiting_for_room) == (2 * MB, 0, 0)


async def test_an_upload_that_finds_no_room_within_its_bound_goes_on_and_spills_to_disk(tmp_path):
    spool = UpdateSpool(tmp_path, max_size=10 * MB, memory_budget=MB)
    await spooled(spool, "u1", b"1" * MB)  # never named: the budget stays full
    update = await spooled(spool, "u2", b"2" * MB, bound=0.05)
    assert update.data is None and update.path.read_bytes() == b"2" * MB
    assert (spool.held_bytes, spool.reserved_bytes, spool.waiting_for_room) == (MB, 0, 0)


async def test_room_goes_in_arrival_order_and_an_upload_cancelled_as_it_was_handed_room_gives_it_back(
    tmp_path,
):
    spool = UpdateSpool(tmp_path, max_size=10 * MB, memory_budget=2 * MB)
    for n in (1, 2):
        await spooled(spool, f"u{n}", b"x" * MB)
    third = asyncio.create_task(spooled(spool, "u3", b"3" * MB))
    await waiting(spool, 1)
    fourth = asyncio.create_task(spooled(spool, "u4", b"4" * MB))
    await waiting(spool, 2)

    spool.release(spool.claim("u1", "a"))  # room for one: handed to the first waiting, u3 ...
    assert spool.reserved_bytes == MB  # u3's, though its task has not run since
    third.cancel()  # ... whose call ends before it could use it: the room passes on to u4
    with pytest.raises(asyncio.CancelledError):
        await third
    update = await fourth
    assert update.data == b"4" * MB and spool.claim("u3", "a") is None
    assert (spool.held_bytes, spool.reserved_bytes, spool.waiting_for_room) == (2 * MB, 0, 0)
