"""The repository sweep: objects no record names go once older than the grace period; nothing else."""

import asyncio
import os
import time
from dataclasses import replace

from scaleout.controller import Controller
from scaleout.controller.sweep import sweep_repository
from scaleout.store.entities import Package
from tests.controller.conftest import Stores
from tests.controller.harness import FAST

HOUR = 3600.0


def put(stores: Stores, kind: str, object_id: str, age: float) -> None:
    """An object of `age` seconds (its modification time set back, as a crash long ago left it)."""
    path = os.path.join(stores.tmp, f"{object_id}.bin")
    with open(path, "wb") as f:
        f.write(b"x" * 100)
    stores.repository.put(kind, object_id, path)
    stored = os.path.join(stores.tmp, "models", kind, object_id)
    then = time.time() - age
    os.utime(stored, (then, then))


def fill(stores: Stores, seed_id: str) -> None:
    os.utime(os.path.join(stores.tmp, "models", "models", seed_id), (time.time() - 5 * HOUR,) * 2)
    put(stores, "models", "orphan-old", 2 * HOUR)  # a round's aggregate a crash left behind
    put(stores, "models", "orphan-new", 60)  # a round in flight, or an upload before its record
    put(stores, "packages", "package-old", 2 * HOUR)
    stores.statestore.packages.add(Package(id="package-old", name="p"))
    put(stores, "packages", "package-orphan", 2 * HOUR)


def stored_ids(stores: Stores, kind: str) -> list[str]:
    return sorted(o.id for o in stores.repository.list_objects(kind))


def test_the_sweep_deletes_only_unnamed_objects_older_than_the_grace_period(stores, seed_id):
    fill(stores, seed_id)

    deleted = sweep_repository(stores.statestore, stores.repository, grace=HOUR)

    assert sorted((o.kind, o.id, o.size) for o in deleted) == [
        ("models", "orphan-old", 100),
        ("packages", "package-orphan", 100),
    ]
    assert stored_ids(stores, "models") == ["orphan-new", seed_id]
    assert stored_ids(stores, "packages") == ["package-old"]
    assert sweep_repository(stores.statestore, stores.repository, grace=HOUR) == []


def test_optimizer_state_stays_with_its_model_and_goes_without_one(stores, seed_id):
    put(stores, "models", f"{seed_id}.fedadam.state", 2 * HOUR)  # the state the seed model came with
    put(stores, "models", "gone.fedadam.state", 2 * HOUR)  # a round that never committed its model

    deleted = sweep_repository(stores.statestore, stores.repository, grace=HOUR)

    assert [o.id for o in deleted] == ["gone.fedadam.state"]
    assert f"{seed_id}.fedadam.state" in stored_ids(stores, "models")


def test_the_sweep_looks_records_up_in_bounded_batches(stores, seed_id, monkeypatch):
    for n in range(7):
        put(stores, "models", f"orphan-{n}", 2 * HOUR)
    monkeypatch.setattr("scaleout.controller.sweep.BATCH", 3)

    deleted = sweep_repository(stores.statestore, stores.repository, grace=HOUR)

    assert sorted(o.id for o in deleted) == [f"orphan-{n}" for n in range(7)]
    assert stored_ids(stores, "models") == [seed_id]


def test_a_starting_controller_sweeps_the_repository(stores, seed_id):
    fill(stores, seed_id)

    async def scenario() -> None:
        controller = Controller(stores.statestore, stores.repository, replace(FAST, sweep_grace=HOUR))
        await controller.start()
        try:
            deadline = time.monotonic() + 30
            # The sweep runs in the background, so the start does not wait on a large repository.
            while stores.repository.model_exists("orphan-old") and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await controller.close()

    asyncio.run(scenario())

    assert stored_ids(stores, "models") == ["orphan-new", seed_id]
    assert stored_ids(stores, "packages") == ["package-old"]
