"""Async (FedBuff) sessions at the controller, against RunAsync doubles on real loopback gRPC: exact
versions from the recorded updates, the config each combiner gets, lost combiners, retries, ends."""

import asyncio
import json
import math
import time
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from scaleout.controller import INTERRUPTED, Controller
from scaleout.store.entities import Event, Round, RoundStatus, Session, SessionConfig, SessionStatus, utcnow
from tests.controller.async_double import AsyncDouble
from tests.controller.conftest import Stores
from tests.controller.control_double import serving
from tests.controller.harness import (
    FAST,
    SESSION_BOUND,
    create_session,
    event_types,
    rounds_of,
    run_session,
)
from tests.controller.test_resume import DEAD, commit, resume

ASYNC = {"mode": "async", "round_timeout": 60.0}


def versions_of(stores: Stores, session_id: str) -> list[Round]:
    return [r for r in rounds_of(stores, session_id) if r.status == RoundStatus.FINISHED]


def events_of(stores: Stores, session_id: str, type: str) -> list[Event]:
    events = stores.statestore.events.list({"session_id": session_id, "type": type}, sort_key="id")
    return events.items


def assert_versions_follow_the_records(
    stores: Stores,
    seed: list[np.ndarray],
    records: list[Round],
    increments: dict[str, float],
    server_lr: float,
    exponent: float,
) -> None:
    """x_k = x_{k-1} + server_lr * sum(n s(tau) k) / sum(n) over version k's recorded updates."""
    shift = 0.0
    for record in records:
        for c in record.clients:
            assert c.staleness == record.index - c.base_version  # built at version index
            assert c.staleness_weight == pytest.approx((1 + c.staleness) ** -exponent, abs=1e-12)
        total = sum(c.num_examples for c in record.clients)
        weighted = math.fsum(
            c.num_examples * c.staleness_weight * increments[c.client_id] for c in record.clients
        )
        shift += server_lr * weighted / total
        for array, start in zip(stores.load_model(record.model_id), seed, strict=True):
            assert array.dtype == start.dtype
            np.testing.assert_allclose(array, start + shift, rtol=0, atol=1e-6)


def test_versions_of_two_combiners_are_the_staleness_weighted_mean_deltas_of_their_updates(
    stores, seed_id, seed_weights
):
    increments = {"a": 1.0, "b": 2.0, "c": 4.0}
    c1 = AsyncDouble("c1", stores.repository, clients={"a": 3, "b": 7}, increments=increments, lags={"b": 1})
    c2 = AsyncDouble("c2", stores.repository, clients={"c": 5}, increments=increments)
    config = {**ASYNC, "max_versions": 3, "buffer_size": 3, "server_lr": 0.5, "client_settings": {"lr": 0.1}}

    session = asyncio.run(run_session(stores, [c1, c2], seed_id, **config))

    assert session.status == SessionStatus.FINISHED, session.error
    assert session.rounds_done == 3
    records = versions_of(stores, session.id)
    assert [r.index for r in records] == [0, 1, 2]
    assert [r.status for r in rounds_of(stores, session.id)] == [RoundStatus.FINISHED] * 3
    # each version holds both combiners' updates; b trains one version behind
    for record in records:
        assert sorted((c.client_id, c.combiner_id, c.num_examples) for c in record.clients) == [
            ("a", "c1", 3),
            ("b", "c1", 7),
            ("c", "c2", 5),
        ]
        assert sorted((c.combiner_id, c.num_examples) for c in record.combiners) == [("c1", 10), ("c2", 5)]
    assert [sorted(c.staleness for c in r.clients) for r in records] == [[0, 0, 0], [0, 0, 1], [0, 0, 1]]
    assert_versions_follow_the_records(stores, seed_weights, records, increments, 0.5, 0.5)
    # one trail from the seed; each record's parent is the previous version
    assert [r.parent_model_id for r in records] == [seed_id, records[0].model_id, records[1].model_id]
    trail = stores.statestore.models.get(records[-1].model_id)
    assert trail.ancestors == [records[1].model_id, records[0].model_id, seed_id]
    (finished,) = events_of(stores, session.id, "session_finished")
    assert finished.message == "3 version(s) committed; max_versions of 3 reached"
    committed = events_of(stores, session.id, "version_committed")
    assert committed[1].message == (
        f"version 2 committed model {records[1].model_id}: 3 update(s) from 2 combiner(s), "
        "staleness mean 0.33 max 1; 0 update(s) rejected"
    )


def test_every_combiner_gets_the_sessions_async_config_then_flushes_and_new_versions(stores, seed_id):
    c1 = AsyncDouble("c1", stores.repository, clients={"a": 3, "b": 7})
    c2 = AsyncDouble("c2", stores.repository, clients={"c": 5})
    config = {
        **ASYNC,
        "max_versions": 2,
        "buffer_size": 3,
        "max_concurrency": 3,
        "staleness": "constant",
        "max_staleness": 4,
        "max_update_norm": 10.0,
        "clip_updates": True,
        "client_settings": {"epochs": 2},
    }

    session = asyncio.run(run_session(stores, [c1, c2], seed_id, **config))

    assert session.status == SessionStatus.FINISHED, session.error
    v1, v2 = versions_of(stores, session.id)
    for double, share in ((c1, 2), (c2, 1)):  # max_concurrency 3 in proportion to 2 and 1 clients
        start = double.commands[0].start
        assert (start.session_id, start.model_id, start.version) == (session.id, seed_id, 0)
        assert (start.max_concurrency, start.staleness, start.max_staleness) == (share, "constant", 4)
        assert (start.task_timeout, start.helper, json.loads(start.client_settings)) == (
            60.0,
            "numpyhelper",
            {"epochs": 2},
        )
        assert (start.max_update_norm, start.clip_updates) == (10.0, True)
        kinds = [(c.WhichOneof("command"), c.flush.version, c.version.model_id) for c in double.commands[1:4]]
        assert kinds == [("flush", 1, ""), ("version", 0, v1.model_id), ("flush", 2, "")]
        assert double.commands[2].version.version == 1
    assert all(c.staleness_weight == 1.0 for r in (v1, v2) for c in r.clients)


def test_unset_async_bounds_are_sent_as_no_bound_and_a_combiner_with_no_share_sits_out(stores, seed_id):
    unbounded = AsyncDouble("c1", stores.repository, clients={"a": 3})
    config = {**ASYNC, "max_versions": 1, "buffer_size": 1}
    session = asyncio.run(run_session(stores, [unbounded], seed_id, **config))
    assert session.status == SessionStatus.FINISHED, session.error
    start = unbounded.commands[0].start
    assert (start.max_concurrency, start.max_staleness, start.max_update_norm) == (0, -1, 0.0)

    c1 = AsyncDouble("c1", stores.repository, clients={"a": 3, "b": 7})
    c2 = AsyncDouble("c2", stores.repository, clients={"c": 5})
    config = {**ASYNC, "max_versions": 1, "buffer_size": 2, "max_concurrency": 1}
    session = asyncio.run(run_session(stores, [c1, c2], seed_id, **config))

    assert session.status == SessionStatus.FINISHED, session.error
    assert (c1.async_calls, c2.async_calls, c1.commands[0].start.max_concurrency) == (1, 0, 1)
    (record,) = versions_of(stores, session.id)
    assert {c.combiner_id for c in record.clients} == {"c1"}


def test_a_combiner_lost_at_a_flush_loses_its_buffer_as_rejected_and_the_others_go_on(
    stores, seed_id, seed_weights
):
    increments = {"a": 1.0, "b": 2.0, "c": 4.0}
    c1 = AsyncDouble("c1", stores.repository, clients={"a": 3, "b": 7}, increments=increments)
    c2 = AsyncDouble(
        "c2",
        stores.repository,
        clients={"c": 5},
        increments=increments,
        rejections=[("d", "stale: trained from version 0, 5 versions behind, max_staleness is 4")],
        ignore_flushes=True,
    )
    settings = replace(FAST, round_margin=1.0)
    config = {**ASYNC, "max_versions": 2, "buffer_size": 2, "staleness": "constant"}

    session = asyncio.run(run_session(stores, [c1, c2], seed_id, settings, **config))

    assert session.status == SessionStatus.FINISHED, session.error
    v1, v2 = versions_of(stores, session.id)
    assert all(c.combiner_id == "c1" for r in (v1, v2) for c in r.clients)
    lost = "combiner c2: no answer to FlushBuffer in 1 s"
    # c2 folded c's update before it stopped answering: lost with its buffer, rejected naming why
    assert [(r.client_id, r.combiner_id, r.reason) for r in v1.rejected] == [
        ("d", "c2", "stale: trained from version 0, 5 versions behind, max_staleness is 4"),
        ("c", "c2", f"its combiner's stream ended before a flush: {lost}"),
    ]
    assert v2.rejected == []
    assert [(c.combiner_id, c.error) for c in v1.combiners if c.error] == [("c2", lost)]
    assert_versions_follow_the_records(stores, seed_weights, [v1, v2], increments, 1.0, 0.0)
    (event,) = events_of(stores, session.id, "combiner_lost")
    assert event.combiner_id == "c2" and event.message.startswith(lost)
    assert event.message.endswith("training goes on with 1 combiner(s)")
    assert c2.stream_ended.is_set()


def test_streams_that_keep_failing_are_reopened_under_the_retry_budget_then_the_session_fails(
    stores, seed_id
):
    double = AsyncDouble("c1", stores.repository, clients={"a": 3}, abort_after_folds=0)
    config = {**ASYNC, "max_versions": 2, "round_retries": 1}

    session = asyncio.run(run_session(stores, [double], seed_id, **config))

    assert session.status == SessionStatus.FAILED
    assert session.error == (
        "async training at version 0 failed after 2 attempt(s) (retries spent): every combiner's "
        "RunAsync stream failed: combiner c1: RunAsync failed: UNAVAILABLE: c1 went away"
    )
    assert double.async_calls == 2
    assert event_types(stores, session.id).count("async_retry") == 1
    assert rounds_of(stores, session.id) == []


def test_no_update_folded_within_the_bound_is_a_failure_of_the_streams(stores, seed_id):
    double = AsyncDouble("c1", stores.repository, clients={"a": 3}, fold=False)
    settings = replace(FAST, round_margin=0.5)
    config = {**ASYNC, "round_timeout": 0.5, "max_versions": 2}

    session = asyncio.run(run_session(stores, [double], seed_id, settings, **config))

    assert session.status == SessionStatus.FAILED
    assert session.error.startswith("async training at version 0 failed after 1 attempt(s) (retries spent): ")
    assert "(round_timeout + round_margin is 1 s) on 1 combiner(s); check that their clients train" in (
        session.error
    )
    assert double.stream_ended.is_set()


def test_max_duration_ends_the_session_finished(stores, seed_id):
    double = AsyncDouble("c1", stores.repository, clients={"a": 3}, fold=False)

    session = asyncio.run(run_session(stores, [double], seed_id, **{**ASYNC, "max_duration": 1.0}))

    assert session.status == SessionStatus.FINISHED, session.error
    (finished,) = events_of(stores, session.id, "session_finished")
    assert finished.message == "0 version(s) committed; max_duration of 1 s reached"
    assert double.stream_ended.is_set()


def test_fedavgm_steps_on_the_mean_version_with_its_momentum_continued(stores, seed_id, seed_weights):
    double = AsyncDouble("c1", stores.repository, clients={"a": 2, "b": 6}, increments={"a": 1.0, "b": 3.0})
    kwargs = {"server_lr": 0.5, "momentum": 0.5}
    config = {
        **ASYNC,
        "max_versions": 3,
        "buffer_size": 2,
        "aggregator": "fedavgm",
        "aggregator_kwargs": kwargs,
    }

    session = asyncio.run(run_session(stores, [double], seed_id, **config))

    assert session.status == SessionStatus.FINISHED, session.error
    delta = (2 * 1.0 + 6 * 3.0) / 8 * (1 + 0) ** -0.5
    momentum, shift = 0.0, 0.0
    for record in versions_of(stores, session.id):
        momentum = 0.5 * momentum + delta
        shift += 0.5 * momentum
        for array, start in zip(stores.load_model(record.model_id), seed_weights, strict=True):
            np.testing.assert_allclose(array, start + shift, rtol=0, atol=1e-6)
        assert record.optimizer_state_id == f"{record.model_id}.fedavgm.state"


def test_every_validate_every_th_version_is_validated(stores, seed_id):
    double = AsyncDouble("c1", stores.repository, clients={"a": 3})
    config = {**ASYNC, "max_versions": 5, "buffer_size": 1, "validate": True, "validate_every": 2}

    session = asyncio.run(run_session(stores, [double], seed_id, **config))

    assert session.status == SessionStatus.FINISHED, session.error
    records = versions_of(stores, session.id)
    validated = [c.model_id for c in double.validation_configs]
    assert validated == [records[1].model_id, records[3].model_id]
    assert [c.round_id for c in double.validation_configs] == [records[1].id, records[3].id]
    assert len(events_of(stores, session.id, "validation_finished")) == 2


def test_stop_terminates_an_async_session_and_cancels_its_streams(stores, seed_id):
    double = AsyncDouble("c1", stores.repository, clients={"a": 3, "b": 4}, in_flight=2)

    async def scenario() -> tuple[Session, dict]:
        async with serving(stores.statestore, [double]):
            controller = Controller(stores.statestore, stores.repository, FAST)
            await controller.start()
            config = {**ASYNC, "max_versions": 3, "buffer_size": 10}
            session = await asyncio.to_thread(create_session, stores, seed_id, **config)
            await controller.start_session(session.id)
            live = await _live_with(controller, session.id, lambda p: p["buffer_fill"] == 2)
            stopped = await controller.stop_session(session.id)
            await asyncio.wait_for(double.stream_ended.wait(), timeout=10)
            await controller.close()
            return stopped, live

    session, live = asyncio.run(scenario())

    assert session.status == SessionStatus.TERMINATED and session.finished_at is not None
    assert rounds_of(stores, session.id) == []
    assert "session_terminated" in event_types(stores, session.id)
    assert {k: live[k] for k in ("mode", "version", "index", "buffer_fill", "buffer_size", "in_flight")} == {
        "mode": "async",
        "version": 0,
        "index": 0,
        "buffer_fill": 2,
        "buffer_size": 10,
        "in_flight": 2,
    }
    assert live["combiners"]["c1"]["max_concurrency"] == 0 and live["stage"] == "training"


async def _live_with(controller: Controller, session_id: str, condition, timeout: float = 20.0) -> dict:
    """The session's live status once it meets condition: it is in memory, no event marks a change."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = controller.progress(session_id)
        if live is not None and condition(live):
            return live
        await asyncio.sleep(0.05)
    raise TimeoutError(f"live status never met the condition: {controller.progress(session_id)}")


def test_a_restarted_controller_resumes_an_async_session_from_its_latest_version(
    stores, seed_id, seed_weights
):
    config = SessionConfig(mode="async", max_versions=3, buffer_size=1, round_timeout=60, validate=False)
    session = stores.statestore.sessions.add(
        Session(
            name="crashed",
            status=SessionStatus.STARTED,
            config=config,
            seed_model_id=seed_id,
            rounds_done=1,
            started_at=utcnow(),
            lease_owner=DEAD,
            lease_expires=utcnow() - timedelta(seconds=1),
        )
    )
    v1 = stores.statestore.rounds.add(
        Round(session_id=session.id, index=0, status=RoundStatus.FINISHED, parent_model_id=seed_id)
    )
    seed = stores.statestore.models.get(seed_id)
    commit(stores, "m1", [w + 1 for w in seed_weights], seed, session, v1.id)
    # the controller died committing version 2
    stores.statestore.rounds.add(
        Round(session_id=session.id, index=1, status=RoundStatus.RUNNING, parent_model_id="m1")
    )
    double = AsyncDouble("c1", stores.repository, clients={"a": 4}, increments={"a": 2.0})

    async def scenario() -> Session:
        async with serving(stores.statestore, [double]):
            _, controller = await resume(stores, [double])
            try:
                return await controller.wait_for_session(session.id, SESSION_BOUND)
            finally:
                await controller.close()

    stored = asyncio.run(scenario())

    assert (stored.status, stored.rounds_done, stored.resumed) == (SessionStatus.FINISHED, 3, 1)
    start = double.commands[0].start
    assert (start.version, start.model_id) == (1, "m1")
    records = rounds_of(stores, session.id)
    assert [(r.index, r.status, r.error) for r in records] == [
        (0, RoundStatus.FINISHED, None),
        (1, RoundStatus.FAILED, INTERRUPTED),
        (1, RoundStatus.FINISHED, None),
        (2, RoundStatus.FINISHED, None),
    ]
    assert records[2].parent_model_id == "m1" and records[3].parent_model_id == records[2].model_id
    for record, shift in ((records[2], 3.0), (records[3], 5.0)):
        for array, start_array in zip(stores.load_model(record.model_id), seed_weights, strict=True):
            np.testing.assert_allclose(array, start_array + shift, rtol=0, atol=1e-6)
    (resumed,) = events_of(stores, session.id, "session_resumed")
    assert " at version 1 (resumed 1 time(s); previous controller: dead-controller)" in resumed.message


def test_a_buffer_that_does_not_fit_the_model_fails_its_version_and_is_discarded(stores, seed_id):
    double = AsyncDouble("c1", stores.repository, clients={"a": 4}, partial_shapes=[(7,)])

    session = asyncio.run(
        run_session(stores, [double], seed_id, **{**ASYNC, "max_versions": 1, "buffer_size": 1})
    )

    assert session.status == SessionStatus.FAILED
    error = (
        "version 1: server step failed: the buffer's delta has arrays of shapes [(7,)], the latest "
        "version [(4, 3), (5,)]"
    )
    assert session.error == (
        f"async training at version 0 failed after 1 attempt(s) (retries spent): {error}"
    )
    (record,) = rounds_of(stores, session.id)
    assert (record.index, record.status, record.error, record.model_id) == (
        0,
        RoundStatus.FAILED,
        error,
        None,
    )
    assert [c.client_id for c in record.clients] == []
    assert not stores.repository.model_exists(double.partials[0])
    assert stores.statestore.models.count({"session_id": session.id}) == 0
