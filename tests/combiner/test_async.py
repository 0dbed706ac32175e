"""Asynchronous (FedBuff) training over real gRPC: Control.RunAsync driven as the controller does, with
clients speaking the real proto to a real combiner."""

import asyncio
import json

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from scaleout.client.edge import EdgeClient
from scaleout.client.settings import ClientSettings
from scaleout.proto import scaleout_pb2 as pb
from scaleout.rejections import rejection_kind
from tests.client.doubles import NUM_EXAMPLES, ApiDouble, assigned, make_package, serving
from tests.combiner.async_driver import async_controller
from tests.combiner.driver import (
    WAIT,
    address,
    clients,
    controller,
    load_model,
    npz_bytes,
    put_seed,
    running_combiner,
)
from tests.combiner.test_official_rpcs import Poller

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

EDGE_WAIT = 60.0  # real clients run their train entry point in a subprocess
RNG = np.random.default_rng(16)
SEED = [RNG.standard_normal((3, 4)).astype(np.float32), RNG.standard_normal(5)]


def moved(model: list[np.ndarray], scale: float) -> list[np.ndarray]:
    """The model plus a random step of about ``scale``, in its dtypes: a client's 'trained' model."""
    return [(a + scale * RNG.standard_normal(a.shape)).astype(a.dtype) for a in model]


def as_float64(model: list[np.ndarray]) -> list[np.ndarray]:
    return [a.astype(np.float64) for a in model]


@pytest.mark.parametrize(
    ("staleness", "exponent"), [("constant", 0.0), ("polynomial", 0.5), ("polynomial", 2.0)]
)
async def test_partial_is_the_staleness_weighted_sum_of_deltas_over_examples(tmp_path, staleness, exponent):
    def s(tau: int) -> float:
        return 1.0 if staleness == "constant" else (1 + tau) ** -exponent

    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b", "c") as (a, b, c),
        async_controller(combiner) as ctl,
    ):
        versions = {0: SEED, 1: moved(SEED, 0.5), 2: moved(SEED, 0.5)}
        ids = {v: put_seed(combiner, model) for v, model in versions.items()}
        await ctl.start(ids[0], staleness=staleness, staleness_exponent=exponent)
        first = {client.client_id: await client.next_task() for client in (a, b, c)}
        assert {t.model_id for t in first.values()} == {ids[0]}
        expected = [np.zeros(x.shape) for x in SEED]
        total = 0

        async def answer(client, task, base: int, tau: int, n: int) -> None:
            nonlocal total
            update = moved(versions[base], 1.0)
            assert await client.train(task, update, n) == "accepted"
            for acc, u, x in zip(expected, as_float64(update), as_float64(versions[base]), strict=True):
                acc += n * s(tau) * (u - x)
            total += n

        await answer(a, first["a"], base=0, tau=0, n=1)
        second_a = await a.next_task()  # a's slot went to a again, still on version 0
        await ctl.new_version(1, ids[1])
        await answer(b, first["b"], base=0, tau=1, n=3)
        second_b = await b.next_task()
        assert second_b.model_id == ids[1]
        await ctl.new_version(2, ids[2])
        await answer(c, first["c"], base=0, tau=2, n=2)
        await answer(b, second_b, base=1, tau=1, n=4)
        await answer(a, second_a, base=0, tau=2, n=5)
        flushed = await ctl.flush(3)

        assert flushed.version == 3 and flushed.num_examples == total == 15
        assert [(u.client.client_id, u.base_version, u.staleness) for u in flushed.updates] == [
            ("a", 0, 0),
            ("b", 0, 1),
            ("c", 0, 2),
            ("b", 1, 1),
            ("a", 0, 2),
        ]
        assert [u.staleness_weight for u in flushed.updates] == pytest.approx(
            [s(u.staleness) for u in flushed.updates]
        )
        assert list(ctl.folded) == list(flushed.updates)
        partial = load_model(combiner, flushed.model_id, tmp_path)
        for got, acc, x in zip(partial, expected, SEED, strict=True):
            assert got.dtype == x.dtype and got.shape == x.shape
            np.testing.assert_allclose(got, acc / total, rtol=0, atol=1e-6)
        assert await ctl.end() is None


def fedbuff_run(combiner):
    return combiner.rounds.fedbuff.current_run


async def test_update_staler_than_max_staleness_is_rejected_naming_both_versions(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a") as (a,),
        async_controller(combiner) as ctl,
    ):
        ids = [
            put_seed(combiner, SEED),
            put_seed(combiner, moved(SEED, 1)),
            put_seed(combiner, moved(SEED, 1)),
        ]
        await ctl.start(ids[0], max_staleness=1, client_settings='{"epochs": 3}')
        task = await a.next_task()
        await ctl.new_version(1, ids[1])
        await ctl.new_version(2, ids[2])
        reason = (
            "stale update: trained on version 0, the current version is 2 and max_staleness is 1; "
            "not averaged"
        )
        assert await a.train(task, moved(SEED, 1), 3) == f"rejected: {reason}"
        await ctl.until(lambda: len(ctl.rejected) == 1)
        assert (ctl.rejected[0].client_id, ctl.rejected[0].reason) == ("a", reason)
        assert rejection_kind(reason).label == "stale"  # the label of scaleout_combiner_updates_rejected
        retry = await a.next_task()  # the rejection freed a's slot: a new task on the latest version
        assert retry.model_id == ids[2] and retry.round_id.startswith("async-v2-")
        assert json.loads(retry.data) == {
            "round_index": 2,
            "version": 2,
            "helper": "numpyhelper",
            "client_settings": {"epochs": 3},
        }
        assert await a.train(retry, moved(load_model(combiner, ids[2], tmp_path), 1), 3) == "accepted"
        flushed = await ctl.flush(3)
        assert flushed.num_examples == 3 and [u.staleness for u in flushed.updates] == [0]


async def test_max_concurrency_bounds_tasks_in_flight_and_idle_clients_take_turns(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b", "c", "d") as group,
        async_controller(combiner) as ctl,
    ):
        by_id = {client.client_id: client for client in group}
        await ctl.start(put_seed(combiner, SEED), max_concurrency=2)
        holding = {cid: await by_id[cid].next_task() for cid in ("a", "b")}
        run = fedbuff_run(combiner)
        # Each answer frees one slot, which goes to the client idle longest: c, d, a, b, c, ...
        for answering, next_client in [("a", "c"), ("b", "d"), ("c", "a"), ("d", "b"), ("a", "c")]:
            assert set(run.busy) == set(holding) and len(run.tasks) == 2
            task = holding.pop(answering)
            assert await by_id[answering].train(task, moved(SEED, 1), 1) == "accepted"
            holding[next_client] = await by_id[next_client].next_task()
        assert set(run.busy) == set(holding) == {"b", "c"} and len(run.tasks) == 2
        assert len({t.round_id for t in holding.values()}) == 2  # a round id per task


async def test_a_hung_client_loses_its_slot_after_task_timeout_and_another_gets_work(tmp_path):
    # task_timeout bounds b's task too: long enough for b to answer on a loaded machine.
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        async_controller(combiner) as ctl,
    ):
        timeouts = REGISTRY.get_sample_value("scaleout_combiner_async_task_timeouts_total") or 0
        await ctl.start(put_seed(combiner, SEED), max_concurrency=1, task_timeout=2.0)
        hung = await a.next_task()  # a uploads but never sends its update
        await a.upload(npz_bytes(moved(SEED, 1)))
        assert len(combiner.spool) == 1 and combiner.spool.held_bytes > 0  # a small update: in memory
        task_b = await b.next_task()  # a's slot went to b after task_timeout
        assert (len(combiner.spool), combiner.spool.held_bytes) == (0, 0)  # a's upload went with its task
        assert await b.train(task_b, moved(SEED, 1), 2) == "accepted"
        await ctl.until(lambda: "timeout" in ctl.stages())
        (timeout,) = [p for p in ctl.progress if p.stage == "timeout"]
        assert timeout.client_id == "a"
        assert REGISTRY.get_sample_value("scaleout_combiner_async_task_timeouts_total") == timeouts + 1
        assert (
            timeout.message
            == "1 task(s) timed out after 2 s (task_timeout), their slots went to idle clients: a"
        )
        late = await a.train(hung, moved(SEED, 1), 1)
        assert late == (
            f"rejected: task {hung.correlation_id} timed out after 2 s (task_timeout) before its update "
            "arrived and its slot went to another client (stale update); not averaged"
        )
        assert rejection_kind(late.removeprefix("rejected: ")).label == "timeout"
        flushed = await ctl.flush(1)
        assert [u.client.client_id for u in flushed.updates] == ["b"] and flushed.num_examples == 2


async def test_the_only_client_gets_a_new_task_after_a_timeout(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a") as (a,),
        async_controller(combiner) as ctl,
    ):
        await ctl.start(put_seed(combiner, SEED), task_timeout=0.5)
        first, second = await a.next_task(), await a.next_task()  # the second after a timeout
        assert second.correlation_id != first.correlation_id
        assert second.round_id != first.round_id  # so that the new task supersedes at the client


async def test_a_client_that_disconnects_frees_its_slot(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        async_controller(combiner) as ctl,
    ):
        await ctl.start(put_seed(combiner, SEED), max_concurrency=1)
        await a.next_task()
        await a.close()
        task_b = await b.next_task()
        await ctl.until(lambda: "left" in ctl.stages())
        (left,) = [p for p in ctl.progress if p.stage == "left"]
        assert left.client_id == "a"
        assert await b.train(task_b, moved(SEED, 1), 1) == "accepted"


async def test_a_failed_task_is_rejected_and_frees_its_slot(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a") as (a,),
        async_controller(combiner) as ctl,
    ):
        await ctl.start(put_seed(combiner, SEED))
        assert await a.fail(await a.next_task(), "out of memory") == "failure recorded"
        await ctl.until(lambda: len(ctl.rejected) == 1)
        assert ctl.rejected[0].reason == "task failed on client a: out of memory"
        assert await a.train(await a.next_task(), moved(SEED, 1), 1) == "accepted"


async def test_clients_that_connect_later_get_tasks(tmp_path):
    async with running_combiner(tmp_path) as combiner, async_controller(combiner) as ctl:
        await ctl.start(put_seed(combiner, SEED))
        async with clients(combiner, "late") as (late,):
            assert await late.train(await late.next_task(), moved(SEED, 1), 1) == "accepted"


async def test_empty_flush_answers_no_model(tmp_path):
    async with running_combiner(tmp_path) as combiner, async_controller(combiner) as ctl:
        await ctl.start(put_seed(combiner, SEED))
        flushed = await ctl.flush(1)
        assert (flushed.version, flushed.model_id, flushed.num_examples, list(flushed.updates)) == (
            1,
            "",
            0,
            [],
        )


async def test_updates_folded_after_a_flush_go_to_the_next_buffer(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        async_controller(combiner) as ctl,
    ):
        await ctl.start(put_seed(combiner, SEED), staleness="constant")
        task_a, task_b = await a.next_task(), await b.next_task()
        update_a, update_b = moved(SEED, 1), moved(SEED, 1)
        assert await a.train(task_a, update_a, 1) == "accepted"
        first = await ctl.flush(1)
        assert await b.train(task_b, update_b, 3) == "accepted"
        second = await ctl.flush(2)
        assert [u.client.client_id for u in first.updates] == ["a"] and first.num_examples == 1
        assert [u.client.client_id for u in second.updates] == ["b"] and second.num_examples == 3
        for flushed, update in ((first, update_a), (second, update_b)):
            partial = load_model(combiner, flushed.model_id, tmp_path)
            for got, u, x in zip(partial, update, SEED, strict=True):
                np.testing.assert_allclose(got, u.astype(np.float64) - x, rtol=0, atol=1e-6)


async def test_the_update_norm_is_bounded_against_the_tasks_own_base_version(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        async_controller(combiner) as ctl,
    ):
        far = [(x + 100).astype(x.dtype) for x in SEED]
        ids = [put_seed(combiner, SEED), put_seed(combiner, far)]
        await ctl.start(ids[0], max_update_norm=1.0)
        task_a = await a.next_task()
        await ctl.new_version(1, ids[1])
        assert await b.train(await b.next_task(), [x + 0.01 for x in SEED], 1) == "accepted"
        task_b = await b.next_task()  # on version 1, 100 away from version 0
        assert await b.train(task_b, [(x + 0.1).astype(x.dtype) for x in far], 1) == "accepted"
        answer = await a.train(task_a, [(x + 0.5).astype(x.dtype) for x in SEED], 1)
        assert answer.startswith("rejected: the update's distance from the global model (L2 norm ")
        assert "above the session's max_update_norm of 1" in answer


async def test_ending_the_stream_ends_the_run_and_later_updates_are_stale(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b") as (a, b),
        async_controller(combiner) as ctl,
    ):
        await ctl.start(put_seed(combiner, SEED), session_id="s9")
        task_a, task_b = await a.next_task(), await b.next_task()
        assert await a.train(task_a, moved(SEED, 1), 1) == "accepted"  # in the buffer, never flushed
        assert await ctl.end() is None
        assert combiner.rounds.fedbuff.current_run is None
        assert await b.train(task_b, moved(SEED, 1), 1) == (
            f"rejected: update answers async task {task_b.correlation_id!r} (session s9) while no async "
            "session runs at combiner combiner-test (stale update); not averaged"
        )
        assert not combiner.rounds.is_active(task_b.correlation_id)
        assert list((tmp_path / "work" / "partials").iterdir()) == []


async def test_tasks_published_are_reported_in_one_progress_event(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a", "b", "c"),
        async_controller(combiner) as ctl,
    ):
        await ctl.start(put_seed(combiner, SEED))
        await ctl.until(lambda: "published" in ctl.stages())
        (published,) = [p for p in ctl.progress if p.stage == "published"]
        assert published.message == "train tasks published to 3 client(s): a, b, c; on version 0"
        assert published.clients_selected == 3


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"session_id": ""}, "AsyncConfig.session_id is required"),
        ({"model_id": "../etc"}, "AsyncConfig.model_id: "),
        ({"staleness": "linear"}, "AsyncConfig.staleness 'linear' is not a known staleness function"),
        ({"staleness_exponent": -1.0}, "AsyncConfig.staleness_exponent must be >= 0 and <= 10, got -1.0"),
        ({"max_staleness": -2}, "AsyncConfig.max_staleness must be an integer >= -1"),
        ({"task_timeout": 0.0}, "AsyncConfig.task_timeout must be a number of seconds > 0"),
        ({"helper": "torchhelper"}, "AsyncConfig.helper 'torchhelper' is not a known helper"),
        ({"max_update_norm": -1.0}, "AsyncConfig.max_update_norm must be > 0"),
        ({"client_settings": "[1, 2]"}, "AsyncConfig.client_settings must be a JSON object"),
        ({"client_settings": "{"}, "AsyncConfig.client_settings is not JSON: "),
        (
            {"client_settings": '{"a": "' + "x" * 70_000 + '"}'},
            "AsyncConfig.client_settings is 70009 bytes of JSON, more than 65536",
        ),
    ],
)
async def test_a_config_error_is_invalid_argument_naming_the_field(tmp_path, config, message):
    async with running_combiner(tmp_path) as combiner, async_controller(combiner) as ctl:
        await ctl.start(**{"model_id": put_seed(combiner, SEED), **config})
        error = await ctl.failure()
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith(message), error.details()


async def test_the_first_command_must_be_start(tmp_path):
    async with running_combiner(tmp_path) as combiner, async_controller(combiner) as ctl:
        await ctl.send(flush=pb.FlushBuffer(version=1))
        error = await ctl.failure()
        assert (error.code(), error.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "the first AsyncCommand must be start (AsyncConfig), got flush",
        )


async def test_a_second_start_is_invalid_argument(tmp_path):
    async with running_combiner(tmp_path) as combiner, async_controller(combiner) as ctl:
        seed_id = put_seed(combiner, SEED)
        await ctl.start(seed_id)
        await ctl.start(seed_id)
        error = await ctl.failure()
        assert (error.code(), error.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "AsyncCommand.start sent again while async session s1 runs: start is the first command only, "
            "once per RunAsync",
        )
        assert combiner.rounds.fedbuff.current_run is None


async def test_a_start_model_missing_from_the_repository_is_not_found(tmp_path):
    async with running_combiner(tmp_path) as combiner, async_controller(combiner) as ctl:
        await ctl.start("0123456789abcdef")
        error = await ctl.failure()
        assert (error.code(), error.details()) == (
            grpc.StatusCode.NOT_FOUND,
            "AsyncConfig.model_id 0123456789abcdef is not in the model repository",
        )


async def test_a_version_not_above_the_current_one_is_invalid_argument(tmp_path):
    async with running_combiner(tmp_path) as combiner, async_controller(combiner) as ctl:
        seed_id = put_seed(combiner, SEED)
        await ctl.start(seed_id, version=4)
        await ctl.send(version=pb.NewVersion(version=4, model_id=seed_id))
        error = await ctl.failure()
        assert (error.code(), error.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "NewVersion.version 4 is not above the current version 4 of async session s1",
        )


async def test_a_version_with_other_arrays_is_invalid_argument(tmp_path):
    async with running_combiner(tmp_path) as combiner, async_controller(combiner) as ctl:
        await ctl.start(put_seed(combiner, SEED))
        await ctl.send(version=pb.NewVersion(version=1, model_id=put_seed(combiner, SEED[:1])))
        error = await ctl.failure()
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().endswith(
            "does not hold the arrays of the session's model: "
            "float32[3, 4] instead of float32[3, 4], float64[5]"
        )


async def test_run_async_while_a_sync_round_runs_is_refused_naming_it(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a") as (a,),
        controller(combiner) as sync,
        async_controller(combiner) as ctl,
    ):
        seed_id = put_seed(combiner, SEED)
        round_task = sync.start_round(model_id=seed_id, round_id="r7", session_id="sync1")
        task = await a.next_task()
        await ctl.start(seed_id)
        error = await ctl.failure()
        assert (error.code(), error.details()) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "combiner combiner-test is running round r7 of session sync1; async session s1 can start once it "
            "ended (one training run at a time)",
        )
        assert await a.train(task, moved(SEED, 1), 1) == "accepted"
        assert (await asyncio.wait_for(round_task, WAIT)).ok


async def test_start_round_while_an_async_session_runs_is_refused_naming_it(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        controller(combiner) as sync,
        async_controller(combiner) as ctl,
    ):
        seed_id = put_seed(combiner, SEED)
        await ctl.start(seed_id, session_id="as1")
        await ctl.flush(1)  # the run has started
        result = await asyncio.wait_for(sync.start_round(model_id=seed_id, round_id="r8"), WAIT)
        assert not result.ok
        assert result.error == (
            "round r8: combiner combiner-test is already running async session as1; one round at a time"
        )


async def test_a_second_run_async_of_another_session_is_refused(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        async_controller(combiner) as first,
        async_controller(combiner) as second,
    ):
        seed_id = put_seed(combiner, SEED)
        await first.start(seed_id, session_id="as1")
        await first.flush(1)
        await second.start(seed_id, session_id="as2")
        error = await second.failure()
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error.details().startswith("combiner combiner-test is running async session as1; ")


async def test_a_new_run_async_of_the_same_session_supersedes_the_old(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a") as (a,),
        async_controller(combiner) as old,
        async_controller(combiner) as new,
    ):
        seed_id = put_seed(combiner, SEED)
        await old.start(seed_id)
        old_task = await a.next_task()
        await new.start(seed_id)
        error = await old.failure()
        assert (error.code(), error.details()) == (
            grpc.StatusCode.ABORTED,
            "superseded by a newer RunAsync of async session s1 at combiner combiner-test",
        )
        new_task = await a.next_task()
        assert new_task.round_id != old_task.round_id
        assert (await a.train(old_task, moved(SEED, 1), 1)).endswith("(stale update); not averaged")
        assert await a.train(new_task, moved(SEED, 1), 1) == "accepted"
        assert len((await new.flush(1)).updates) == 1


async def test_versions_are_dropped_from_staging_once_no_task_trains_from_them(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "slow", "fast") as (slow, fast),
        async_controller(combiner) as ctl,
    ):
        versions = [SEED] + [moved(SEED, 1) for _ in range(7)]
        ids = [put_seed(combiner, model) for model in versions]
        staged_dir = tmp_path / "work" / "models"

        def staged() -> set[str]:
            return {path.stem for path in staged_dir.iterdir()}

        await ctl.start(ids[0])
        slow_task = await slow.next_task()  # holds version 0 throughout
        task = await fast.next_task()
        for version in range(1, 7):
            await ctl.new_version(version, ids[version])
            assert await fast.train(task, moved(versions[version - 1], 1), 1) == "accepted"
            task = await fast.next_task()
            assert task.model_id == ids[version]
        run = fedbuff_run(combiner)
        assert run.versions == {0: ids[0], 6: ids[6]}  # versions 1..5: no task trains from them
        # Staged: the held versions 0 and 6, and the newest others up to the staging area's 3 models.
        assert staged() == {ids[0], ids[5], ids[6]}
        assert await slow.train(slow_task, moved(SEED, 1), 1) == "accepted"
        assert run.versions == {6: ids[6]}
        await ctl.new_version(7, ids[7])
        assert run.versions == {6: ids[6], 7: ids[7]}  # fast's task trains from 6
        assert staged() == {ids[5], ids[6], ids[7]}  # 0 went as 7 came
        await ctl.end()


async def test_a_polling_client_trains_in_an_async_session(tmp_path):
    async with running_combiner(tmp_path) as combiner, async_controller(combiner) as ctl:
        poller = Poller(address(combiner), "poller")
        try:
            assert await poller.poll() == []  # online from its first poll
            await ctl.start(put_seed(combiner, SEED))
            task = await poller.poll_until_task()
            assert task.round_id.startswith("async-v0-")
            assert await poller.train_in_container(task, moved(SEED, 1), 3) == "accepted"
            flushed = await ctl.flush(1)
        finally:
            await poller.close()
        assert [(u.client.client_id, u.client.delivery) for u in flushed.updates] == [("poller", "poll")]


async def test_metrics_count_tasks_flushes_and_the_staleness_of_folds(tmp_path):
    names = {
        "published": "scaleout_combiner_async_tasks_published_total",
        "folds": "scaleout_combiner_async_staleness_count",
        "stale": "scaleout_combiner_async_staleness_sum",
    }

    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    before = {key: sample(name) for key, name in names.items()}
    flushed_before = (
        REGISTRY.get_sample_value("scaleout_combiner_async_flushes_total", {"buffer": "updates"}) or 0
    )
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a") as (a,),
        async_controller(combiner) as ctl,
    ):
        ids = [put_seed(combiner, SEED), put_seed(combiner, moved(SEED, 1))]
        await ctl.start(ids[0])
        task = await a.next_task()
        await ctl.new_version(1, ids[1])
        assert await a.train(task, moved(SEED, 1), 1) == "accepted"  # staleness 1
        await a.next_task()
        await ctl.flush(2)
    after = {key: sample(name) for key, name in names.items()}
    assert {key: after[key] - before[key] for key in names} == {
        "published": 2,
        "folds": 1,
        "stale": 1,
    }
    flushed_after = REGISTRY.get_sample_value("scaleout_combiner_async_flushes_total", {"buffer": "updates"})
    assert flushed_after - flushed_before == 1


async def test_a_validation_overlaps_an_async_session(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a") as (a,),
        controller(combiner) as validator,
        async_controller(combiner) as ctl,
    ):
        seed_id = put_seed(combiner, SEED)
        await ctl.start(seed_id)
        train = await a.next_task()
        validation = validator.start_validation(model_id=seed_id, round_id="v1")
        validate = await a.next_task()
        assert validate.type == "Scaleout_Validation"
        assert await a.validate(validate, {"accuracy": 0.5}) == "accepted"
        assert (await asyncio.wait_for(validation, WAIT)).validations == 1
        assert await a.train(train, moved(SEED, 1), 1) == "accepted"
        assert len((await ctl.flush(1)).updates) == 1


async def test_edge_clients_keep_training_on_the_latest_version(tmp_path):
    """Real edge clients (scaleout.client, running the package's train entry point) in an async session:
    each update's delta is exactly 1 (train writes IN + 1), so the partial is the mean of the staleness
    weights the combiner reported, and each update trained from the version its task named."""
    package = make_package(tmp_path / "pkg")
    weights = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1.5, -2.0])]
    async with running_combiner(tmp_path) as combiner, async_controller(combiner) as ctl:
        ids = [put_seed(combiner, weights), put_seed(combiner, [w + 5 for w in weights])]
        with ApiDouble([assigned(combiner.port)]) as api:
            edges = [
                EdgeClient(
                    ClientSettings(
                        api_url=api.url,
                        work_dir=tmp_path / name,
                        client_id=name,
                        name=name,
                        local_package=package,
                        backoff_initial=0.01,
                        backoff_max=0.05,
                    )
                )
                for name in ("e1", "e2")
            ]
            async with serving(edges[0]), serving(edges[1]):
                await combiner.registry.wait_for(
                    lambda: {"e1", "e2"} <= set(combiner.registry.streaming()), WAIT
                )
                await ctl.start(ids[0])
                await ctl.until(lambda: len(ctl.folded) >= 1, timeout=EDGE_WAIT)
                await ctl.new_version(1, ids[1])
                await ctl.until(lambda: any(u.base_version == 1 for u in ctl.folded), timeout=EDGE_WAIT)
                flushed = await ctl.flush(2)
    updates = list(flushed.updates)
    assert {u.client.client_id for u in updates} <= {
        "e1",
        "e2",
    } and flushed.num_examples == NUM_EXAMPLES * len(updates)
    for update in updates:
        assert json.loads(update.client.meta) == {
            "num_examples": NUM_EXAMPLES,
            "round_index": update.base_version,
        }
        assert update.staleness_weight == pytest.approx((1 + update.staleness) ** -0.5)
    mean_weight = sum(u.staleness_weight for u in updates) / len(updates)
    for got in load_model(combiner, flushed.model_id, tmp_path):
        np.testing.assert_allclose(got, mean_weight, rtol=0, atol=1e-6)


async def test_a_controller_that_goes_away_ends_the_run(tmp_path):
    async with (
        running_combiner(tmp_path) as combiner,
        clients(combiner, "a") as (a,),
        async_controller(combiner) as ctl,
    ):
        await ctl.start(put_seed(combiner, SEED))
        task = await a.next_task()
        run = fedbuff_run(combiner)
        ctl.call.cancel()  # the controller's process died: its stream is cancelled, not ended
        await asyncio.wait_for(run.ended.wait(), WAIT)
        assert combiner.rounds.fedbuff.current_run is None and run.buffer is None
        answer = await a.train(task, moved(SEED, 1), 1)
        assert answer.startswith(f"rejected: update answers async task {task.correlation_id!r} (session s1) ")
