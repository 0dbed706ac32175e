"""Sessions end to end against Control doubles: the trail, the round records, and how sessions end."""

import asyncio
import hashlib

import numpy as np
import pytest

from scaleout.controller import Controller, SessionConflict
from scaleout.store.entities import RoundStatus, Session, SessionStatus
from tests.controller.control_double import ControlDouble, serving
from tests.controller.harness import FAST, create_session, event_types, rounds_of, run_session


def test_three_round_session_commits_a_trail_of_three_models(stores, seed_id, seed_weights):
    double = ControlDouble("combiner", stores.repository, clients={"client-a": 3, "client-b": 7})
    session = asyncio.run(run_session(stores, [double], seed_id, rounds=3, min_clients=2))

    assert session.status == SessionStatus.FINISHED, session.error
    assert session.rounds_done == 3 and session.finished_at is not None
    rounds = rounds_of(stores, session.id)
    assert [r.status for r in rounds] == [RoundStatus.FINISHED] * 3
    assert [r.index for r in rounds] == [0, 1, 2]
    models = [stores.statestore.models.get(r.model_id) for r in rounds]
    assert [m.parent_id for m in models] == [seed_id, models[0].id, models[1].id]
    assert models[2].ancestors == [models[1].id, models[0].id, seed_id]
    assert [r.parent_model_id for r in rounds] == [seed_id, models[0].id, models[1].id]
    assert [m.name for m in models] == ["test round 1", "test round 2", "test round 3"]
    events = stores.statestore.events.list({"session_id": session.id}, sort_key="id").items
    messages = [e.message for e in events if e.type in ("round_started", "round_finished")]
    assert messages[:2] == ["round 1 started (attempt 1)", f"round 1 committed model {models[0].id}"]
    assert messages[-1] == f"round 3 committed model {models[2].id}"
    for record in rounds:
        assert {(c.client_id, c.combiner_id, c.num_examples) for c in record.clients} == {
            ("client-a", "combiner", 3),
            ("client-b", "combiner", 7),
        }
        assert record.clients[0].meta["num_examples"] == record.clients[0].num_examples
        assert [(r.client_id, r.combiner_id) for r in record.rejected] == [("late-client", "combiner")]
        assert record.combiners[0].num_examples == 10 and record.combiners[0].error is None
        assert record.started_at is not None and record.finished_at is not None
    last = stores.load_model(models[2].id)
    for got, seed in zip(last, seed_weights, strict=True):
        assert got.dtype == seed.dtype
        np.testing.assert_allclose(got, seed + 3, atol=1e-5)
    assert {"session_started", "round_started", "round_finished", "session_finished"} <= set(
        event_types(stores, session.id)
    )


def test_every_committed_model_has_its_bytes_with_the_recorded_size_and_sha256(stores, seed_id):
    double = ControlDouble("combiner", stores.repository)
    session = asyncio.run(run_session(stores, [double], seed_id, rounds=2))

    committed = stores.statestore.models.list({"session_id": session.id}).items
    assert len(committed) == 2
    for model in committed:
        with stores.repository.open_model(model.id) as stream:
            data = stream.read()
        assert (model.size, model.sha256) == (len(data), hashlib.sha256(data).hexdigest())


def test_round_config_sent_to_the_combiner_is_the_sessions_config(stores, seed_id):
    double = ControlDouble("combiner", stores.repository)
    config = dict(
        rounds=1,
        round_timeout=4.5,
        min_clients=2,
        buffer_size=2,
        aggregator="trimmed_mean",
        aggregator_kwargs={"beta": 0.25},
        client_settings={"epochs": 2},
        max_update_norm=3.5,
        clip_updates=True,
    )
    session = asyncio.run(run_session(stores, [double], seed_id, **config))

    (sent,) = double.round_configs
    (record,) = rounds_of(stores, session.id)
    assert (sent.session_id, sent.round_id, sent.round_index, sent.model_id) == (
        session.id,
        record.id,
        0,
        seed_id,
    )
    assert (sent.round_timeout, sent.min_clients, sent.requested_clients, sent.buffer_size) == (4.5, 2, 0, 2)
    assert (sent.aggregator, dict(sent.aggregator_kwargs), sent.helper) == (
        "trimmed_mean",
        {"beta": 0.25},
        "numpyhelper",
    )
    assert sent.client_settings == '{"epochs": 2}'
    assert (sent.max_update_norm, sent.clip_updates) == (3.5, True)


def test_stop_session_terminates_it_and_fails_the_running_round(stores, seed_id):
    double = ControlDouble("combiner", stores.repository, hang=True)

    async def scenario() -> tuple[Session, float]:
        async with serving(stores.statestore, [double]):
            controller = Controller(stores.statestore, stores.repository, FAST)
            await controller.start()
            session = await asyncio.to_thread(create_session, stores, seed_id, rounds=3, round_timeout=60)
            await controller.start_session(session.id)
            await asyncio.wait_for(double.round_started.wait(), timeout=10)
            assert controller.running_session_id == session.id
            assert controller.progress(session.id)["stage"] == "training"
            stopped = await controller.stop_session(session.id)
            await asyncio.wait_for(double.round_cancelled.wait(), timeout=5)
            assert controller.running_session_id is None
            await controller.close()
            return stopped

    session = asyncio.run(scenario())

    assert session.status == SessionStatus.TERMINATED and session.finished_at is not None
    (record,) = rounds_of(stores, session.id)
    assert (record.status, record.error) == (RoundStatus.FAILED, "stopped")
    assert "session_terminated" in event_types(stores, session.id)


def test_a_second_session_cannot_start_while_one_runs(stores, seed_id):
    double = ControlDouble("combiner", stores.repository, hang=True)

    async def scenario() -> None:
        async with serving(stores.statestore, [double]):
            controller = Controller(stores.statestore, stores.repository, FAST)
            await controller.start()
            first = await asyncio.to_thread(create_session, stores, seed_id, round_timeout=60)
            second = await asyncio.to_thread(create_session, stores, seed_id)
            await controller.start_session(first.id)
            with pytest.raises(SessionConflict, match=f"session {first.id} is running"):
                await controller.start_session(second.id)
            await controller.close()

    asyncio.run(scenario())


def test_only_a_created_session_can_be_started(stores, seed_id):
    finished = stores.statestore.sessions.add(Session(name="done", status=SessionStatus.FINISHED))

    async def scenario() -> None:
        controller = Controller(stores.statestore, stores.repository, FAST)
        await controller.start()
        with pytest.raises(SessionConflict, match="is Finished; only a Created session can be started"):
            await controller.start_session(finished.id)
        with pytest.raises(SessionConflict, match="is not running: it is Finished"):
            await controller.stop_session(finished.id)
        await controller.close()

    asyncio.run(scenario())


def test_a_session_without_a_seed_model_fails_naming_the_fix(stores):
    double = ControlDouble("combiner", stores.repository)
    session = asyncio.run(run_session(stores, [double], None))

    assert session.status == SessionStatus.FAILED
    assert "has no seed model" in session.error
    assert double.round_configs == []
