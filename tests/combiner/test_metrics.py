"""The metrics port's errors and the transfer gauges (the reason labels of rejections:
tests/test_rejections.py)."""

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from scaleout.combiner.admission import TransferAdmission
from scaleout.combiner.clients import ClientRegistry
from scaleout.combiner.metrics import MetricsServer, RegistryCollector, TransferCollector
from scaleout.combiner.spool import UpdateSpool
from scaleout.store import open_statestore

MB = 1024 * 1024


def test_a_metrics_port_in_use_is_refused_naming_the_port_and_the_flag(tmp_path: Path) -> None:
    statestore = open_statestore(f"sqlite:///{tmp_path / 'statestore.db'}")
    registry = ClientRegistry(statestore, "combiner", 30.0, 5.0)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        expected = (
            rf"^combiner metrics cannot listen on 127\.0\.0\.1:{port}: .*; "
            r"is the port in use\? \(--metrics-port\)$"
        )
        with pytest.raises(OSError, match=expected):
            MetricsServer([RegistryCollector(registry)], "127.0.0.1", port)
    statestore.close()


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.mark.anyio
async def test_the_transfer_gauges_show_slots_taken_and_uploads_waiting_for_a_slot_or_for_memory(tmp_path):
    admission, spool = TransferAdmission(1), UpdateSpool(tmp_path, max_size=10 * MB, memory_budget=MB)
    metrics = CollectorRegistry()
    metrics.register(TransferCollector(admission, spool))

    def gauges() -> list[float | None]:
        names = ("transfers_active", "transfers_waiting", "uploads_waiting_for_memory", "spool_held_bytes")
        return [metrics.get_sample_value(f"scaleout_combiner_{name}") for name in names]

    assert gauges() == [0, 0, 0, 0]
    async with spool.room():
        await spool.receive("u1", "a", one_chunk(b"x" * MB))  # fills the budget
    async with admission.slot():
        queued = asyncio.create_task(admission.slot().__aenter__())
        waiting = asyncio.create_task(spool.room().__aenter__())
        await asyncio.sleep(0)  # one turn of the loop: both tasks run up to their waits
        assert gauges() == [1, 1, 1, MB]
        queued.cancel()
        waiting.cancel()
        await asyncio.gather(queued, waiting, return_exceptions=True)
    assert gauges() == [0, 0, 0, MB]
