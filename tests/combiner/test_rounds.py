"""Training rounds over real gRPC: exact FedAvg, when a round ends, and how it fails."""

import asyncio
import sys

import numpy as np
import pytest

from scaleout.store import open_statestore
from scaleout.store.entities import EventLevel
from tests.combiner.driver import WAIT, clients, controller, load_model, put_seed, running_combiner

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

SEED = [np.arange(12, dtype=np.float32).reshape(3, 4), np.linspace(-1, 1, 5)]


def shifted(k: float) -> list[np.ndarray]:
    """The seed plus k, in the seed's dtypes: a client's 'trained' model."""
    return [(a + k).astype(a.dtype) for a in SEED]


async def test_fedavg_of_three_clients_is_the_exact_weighted_average(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b", "c") as (a, b, c),
        controller(combiner) as ctl,
    ):
        seed_id = put_seed(combiner, SEED)
        round_task = ctl.start_round(model_id=seed_id, min_clients=3)
        tasks = [await client.next_task() for client in (a, b, c)]
        assert {t.type for t in tasks} == {"Scaleout_ModelUpdate"}
        for client, task, k, n in zip((a, b, c), tasks, (1.0, 2.0, 4.0), (1, 3, 6), strict=True):
            assert await client.train(task, shifted(k), n) == "accepted"
        result = await asyncio.wait_for(round_task, WAIT)

        assert result.ok, result.error
        assert result.num_examples == 10
        assert sorted((r.client_id, r.num_examples) for r in result.clients) == [("a", 1), ("b", 3), ("c", 6)]
        assert all(r.HasField("received_at") and r.received_at.seconds > 0 for r in result.clients)
        average = load_model(combiner, result.model_id, tmp_path)
        expected_shift = (1 * 1.0 + 3 * 2.0 + 6 * 4.0) / 10
        for got, seed in zip(average, SEED, strict=True):
            assert got.dtype == seed.dtype and got.shape == seed.shape
            np.testing.assert_allclose(got, seed + expected_shift, rtol=0, atol=1e-6)


async def test_round_ends_as_soon_as_every_selected_client_reported(tmp_path):
    # round_timeout is an hour: the round can only finish this test by ending on the last report.
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        controller(combiner) as ctl,
    ):
        round_task = ctl.start_round(model_id=put_seed(combiner, SEED), round_timeout=3600)
        task_a, task_b = await a.next_task(), await b.next_task()
        assert await a.train(task_a, shifted(1), 5) == "accepted"
        assert not round_task.done()
        assert await b.train(task_b, shifted(1), 5) == "accepted"
        result = await asyncio.wait_for(round_task, WAIT)
        assert result.ok and result.seconds < 3600
        assert ctl.stages() == ["published", "update", "update"]


async def test_folding_keeps_no_copy_of_an_update(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b", "c") as group,
        controller(combiner) as ctl,
    ):
        round_task = ctl.start_round(model_id=put_seed(combiner, SEED))
        spool = tmp_path / "work" / "updates"
        for folded, client in enumerate(group, start=1):
            task = await client.next_task()
            assert await client.train(task, shifted(folded), folded) == "accepted"
            if folded < len(group):
                fedavg = combiner.rounds.current_round.aggregator
                assert (fedavg.count, fedavg.total) == (folded, sum(range(1, folded + 1)))
                assert len(fedavg._acc) == len(SEED)  # one accumulator, not one per client
            # the spooled update is deleted, or its memory freed, once folded
            assert list(spool.iterdir()) == [] and combiner.spool.held_bytes == 0
        assert (await asyncio.wait_for(round_task, WAIT)).ok


async def test_buffer_size_ends_the_round_after_that_many_updates(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b", "c") as group,
        controller(combiner) as ctl,
    ):
        round_task = ctl.start_round(model_id=put_seed(combiner, SEED), buffer_size=2)
        tasks = [await client.next_task() for client in group]
        assert await group[0].train(tasks[0], shifted(1), 1) == "accepted"
        assert await group[1].train(tasks[1], shifted(3), 3) == "accepted"
        result = await asyncio.wait_for(round_task, WAIT)
        assert result.ok and len(result.clients) == 2 and result.num_examples == 4
        late = await group[2].train(tasks[2], shifted(9), 9)
        assert late.startswith("rejected: ") and "stale update" in late
        average = load_model(combiner, result.model_id, tmp_path)
        np.testing.assert_allclose(average[0], SEED[0] + 2.5, atol=1e-6)


async def test_round_timeout_with_min_clients_updates_succeeds(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        controller(combiner) as ctl,
    ):
        round_task = ctl.start_round(model_id=put_seed(combiner, SEED), round_timeout=0.5, min_clients=1)
        task_a = await a.next_task()
        await b.next_task()  # b never answers
        assert await a.train(task_a, shifted(2), 7) == "accepted"
        result = await asyncio.wait_for(round_task, WAIT)
        assert result.ok and [c.client_id for c in result.clients] == ["a"] and result.num_examples == 7


async def test_round_timeout_below_min_clients_fails_with_the_reason(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, _silent),
        controller(combiner) as ctl,
    ):
        seed_id = put_seed(combiner, SEED)
        round_task = ctl.start_round(model_id=seed_id, round_timeout=0.5, min_clients=2)
        task_a = await a.next_task()
        assert await a.train(task_a, shifted(2), 7) == "accepted"
        result = await asyncio.wait_for(round_task, WAIT)
        assert not result.ok and result.model_id == ""
        assert result.error == "round r1: 1 update(s) by the timeout of 0.5 s, min_clients is 2"
        models = sorted(p.name for p in (tmp_path / "models").rglob("*") if p.is_file())
        assert len(models) == 1 and seed_id in models[0]  # nothing but the seed was written


async def test_fewer_connected_clients_than_min_clients_fails_at_once(tmp_path):
    async with running_combiner(tmp_path) as combiner, clients(combiner, "a"), controller(combiner) as ctl:
        result = await asyncio.wait_for(
            ctl.start_round(model_id=put_seed(combiner, SEED), min_clients=2), WAIT
        )
        assert not result.ok
        assert result.error == "round r1: 1 client(s) connected to combiner combiner-test, min_clients is 2"


async def test_a_failed_task_counts_as_reported(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        controller(combiner) as ctl,
    ):
        round_task = ctl.start_round(model_id=put_seed(combiner, SEED))
        task_a, task_b = await a.next_task(), await b.next_task()
        assert await a.train(task_a, shifted(1), 2) == "accepted"
        assert await b.fail(task_b, "train exited with code 1: ZeroDivisionError") == "failure recorded"
        result = await asyncio.wait_for(round_task, WAIT)  # hour-long timeout: ended by the failure
        assert result.ok and [c.client_id for c in result.clients] == ["a"]
        assert [(r.client_id, r.reason) for r in result.rejected] == [
            ("b", "task failed on client b: train exited with code 1: ZeroDivisionError")
        ]


async def test_a_failed_task_is_stored_as_an_event_of_its_client_and_round(tmp_path):
    async with (
        running_combiner(tmp_path, name="c7") as combiner,
        clients(combiner, "a") as (a,),
        controller(combiner) as ctl,
    ):
        round_task = ctl.start_round(model_id=put_seed(combiner, SEED))
        assert await a.fail(await a.next_task(), "out of memory") == "failure recorded"
        result = await asyncio.wait_for(round_task, WAIT)
    statestore = open_statestore(f"sqlite:///{tmp_path / 'statestore.db'}")  # stop() flushed every write
    try:
        (event,) = statestore.events.list({"type": "task_failed"}).items
        assert (event.client_id, event.combiner_id, event.round_id, event.level) == (
            "a",
            "c7",
            result.round_id,
            EventLevel.WARNING,
        )
        assert event.message == "task failed on client a: out of memory"
        assert event.session_id
    finally:
        statestore.close()


async def test_update_from_previous_round_is_rejected_and_not_averaged(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        controller(combiner) as ctl,
    ):
        seed_id = put_seed(combiner, SEED)
        first = ctl.start_round(model_id=seed_id, round_id="r1", round_timeout=0.3)
        old_task_a, task_b = await a.next_task(), await b.next_task()
        assert await b.train(task_b, shifted(1), 1) == "accepted"
        assert (await asyncio.wait_for(first, WAIT)).ok  # a missed round r1

        second = ctl.start_round(model_id=seed_id, round_id="r2")
        new_task_a, new_task_b = await a.next_task(), await b.next_task()
        stale = await a.train(old_task_a, shifted(100), 1000)
        assert stale == (
            "rejected: update for round r1 (session s1) arrived while round r2 (session s1) is running "
            "(stale update); not averaged"
        )
        assert await a.train(new_task_a, shifted(1), 1) == "accepted"
        assert await b.train(new_task_b, shifted(3), 1) == "accepted"
        result = await asyncio.wait_for(second, WAIT)
        assert result.ok and [r.client_id for r in result.rejected] == ["a"]
        np.testing.assert_allclose(load_model(combiner, result.model_id, tmp_path)[1], SEED[1] + 2, atol=1e-6)


async def test_update_while_no_round_runs_is_rejected_as_stale(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a") as (a,),
        controller(combiner) as ctl,
    ):
        round_task = ctl.start_round(model_id=put_seed(combiner, SEED), round_timeout=0.2)
        task = await a.next_task()
        assert not (await asyncio.wait_for(round_task, WAIT)).ok
        answer = await a.train(task, shifted(1), 1)
        assert answer == (
            "rejected: update for round r1 arrived while no round is running at combiner combiner-test "
            "(stale update); not averaged"
        )


async def test_client_not_selected_is_rejected(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        controller(combiner) as ctl,
    ):
        round_task = ctl.start_round(model_id=put_seed(combiner, SEED), requested_clients=1)
        reads = {asyncio.ensure_future(client.next_task()): client for client in (a, b)}
        done, pending = await asyncio.wait(reads, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1, "exactly one of two clients gets the task when one is requested"
        for read in pending:
            read.cancel()
        (read,) = done
        selected, other = reads[read], b if reads[read] is a else a
        task = read.result()
        answer = await other.train(task, shifted(1), 1)  # the other client answers a task it never got
        assert answer == f"rejected: client {other.client_id} was not selected for round r1"
        assert await selected.train(task, shifted(1), 1) == "accepted"
        assert (await asyncio.wait_for(round_task, WAIT)).ok


async def test_second_update_from_a_client_is_rejected_as_duplicate(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        controller(combiner) as ctl,
    ):
        round_task = ctl.start_round(model_id=put_seed(combiner, SEED))
        task_a, task_b = await a.next_task(), await b.next_task()
        assert await a.train(task_a, shifted(1), 1) == "accepted"
        assert await a.train(task_a, shifted(50), 50) == (
            "rejected: duplicate update from client a for round r1; only its first report counts"
        )
        assert await b.train(task_b, shifted(1), 1) == "accepted"
        result = await asyncio.wait_for(round_task, WAIT)
        assert result.num_examples == 2


async def test_invalid_round_config_is_invalid_argument_naming_the_field(tmp_path):
    import grpc

    async with running_combiner(tmp_path) as combiner, controller(combiner) as ctl:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await ctl.start_round(model_id="m1", aggregator="fedmedian")
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "RoundConfig.aggregator 'fedmedian'" in raised.value.details()


async def test_a_small_fedavg_update_never_touches_the_disk_and_is_folded_from_memory(tmp_path):
    """A one-chunk update is held by the spool, checked and folded from memory: no file is opened for
    it (at 1,000 clients a file per update cost ~10 % of the combiner's CPU); the average stays exact."""
    opened: list[str] = []

    def audit(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], str | bytes) and "updates" in str(args[0]):
            opened.append(str(args[0]))

    sys.addaudithook(audit)  # audit hooks cannot be removed; this one only records paths
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        controller(combiner) as ctl,
    ):
        round_task = ctl.start_round(model_id=put_seed(combiner, SEED))
        task_a, task_b = await a.next_task(), await b.next_task()
        opened.clear()
        assert await a.train(task_a, shifted(1), 1) == "accepted"
        assert await b.train(task_b, shifted(4), 2) == "accepted"
        result = await asyncio.wait_for(round_task, WAIT)
        assert result.ok, result.error
        assert combiner.spool.held_bytes == 0  # both folded, their memory freed
        for got, seed in zip(load_model(combiner, result.model_id, tmp_path), SEED, strict=True):
            np.testing.assert_allclose(got, seed + 3.0, rtol=0, atol=1e-6)
    assert [p for p in opened if p.endswith(".npz")] == []
