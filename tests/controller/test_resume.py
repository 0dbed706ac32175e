"""Sessions that outlive their controller: resume from the stored state a crash leaves, the lease
that makes one controller run a session, and the fence that keeps a controller that lost it from
committing. The state a kill -9 leaves is written here as the crashed controller would have left it;
tests/e2e/test_resume.py kills real API processes."""

import asyncio
import os
import time
from dataclasses import replace
from datetime import timedelta

import numpy as np

from scaleout.controller import INTERRUPTED, Controller
from scaleout.controller.commit import model_digest
from scaleout.store.entities import Model, Round, RoundStatus, Session, SessionConfig, SessionStatus, utcnow
from tests.controller.conftest import Stores, helper
from tests.controller.control_double import ControlDouble, serving
from tests.controller.harness import FAST, SESSION_BOUND, create_session, event_types, rounds_of

DEAD = "dead-controller"


def crashed_session(
    stores: Stores, seed_id: str, seed_weights, *, lease_left: float, committed: bool
) -> Session:
    """A 3-round session whose controller died in round 1: round 0 committed model m0 (seed + 1);
    round 1 is Running, and with `committed` its model m1 (seed + 2) was committed just before the crash."""
    session = stores.statestore.sessions.add(
        Session(
            name="crashed",
            status=SessionStatus.STARTED,
            config=SessionConfig(rounds=3, round_timeout=5, validate=False, round_retries=0),
            seed_model_id=seed_id,
            rounds_done=1,
            started_at=utcnow(),
            lease_owner=DEAD,
            lease_expires=utcnow() + timedelta(seconds=lease_left),
        )
    )
    parent = stores.statestore.models.get(seed_id)
    r0 = stores.statestore.rounds.add(
        Round(
            session_id=session.id,
            index=0,
            status=RoundStatus.FINISHED,
            parent_model_id=seed_id,
            model_id="m0",
        )
    )
    commit(stores, "m0", [w + 1 for w in seed_weights], parent, session, r0.id)
    r1 = stores.statestore.rounds.add(
        Round(session_id=session.id, index=1, status=RoundStatus.RUNNING, parent_model_id="m0")
    )
    if committed:
        commit(
            stores, "m1", [w + 2 for w in seed_weights], stores.statestore.models.get("m0"), session, r1.id
        )
    return session


def commit(stores: Stores, model_id: str, weights, parent: Model, session: Session, round_id: str) -> None:
    """Bytes first, then the record, as commit_round does."""
    path = helper.save(weights, os.path.join(stores.tmp, f"{model_id}.npz"))
    stores.repository.put_model(model_id, path)
    size, sha256 = model_digest(stores.repository, model_id)
    stores.statestore.models.add(
        Model(
            id=model_id,
            parent_id=parent.id,
            ancestors=[parent.id, *parent.ancestors],
            session_id=session.id,
            round_id=round_id,
            size=size,
            sha256=sha256,
        )
    )


async def resume(stores: Stores, doubles, settings=FAST) -> tuple[list[str], Controller]:
    controller = Controller(stores.statestore, stores.repository, settings)
    return await controller.start(), controller


def trail_of(stores: Stores, model_id: str) -> list[str]:
    return [model_id, *(m.id for m in stores.statestore.models.ancestors(model_id).items)]


def test_a_restarted_controller_resumes_from_the_last_committed_model_and_reruns_the_round(
    stores, seed_id, seed_weights
):
    session = crashed_session(stores, seed_id, seed_weights, lease_left=-1, committed=False)
    double = ControlDouble("combiner", stores.repository)

    async def scenario() -> tuple[list[str], Session]:
        async with serving(stores.statestore, [double]):
            resumed, controller = await resume(stores, [double])
            try:
                return resumed, await controller.wait_for_session(session.id, SESSION_BOUND)
            finally:
                await controller.close()

    resumed, stored = asyncio.run(scenario())

    assert resumed == [session.id]
    assert (stored.status, stored.rounds_done, stored.resumed, stored.error) == (
        SessionStatus.FINISHED,
        3,
        1,
        None,
    )
    assert (stored.lease_owner, stored.lease_expires) == (None, None)
    rounds = rounds_of(stores, session.id)
    assert [(r.index, r.status) for r in rounds] == [
        (0, RoundStatus.FINISHED),
        (1, RoundStatus.FAILED),
        (1, RoundStatus.FINISHED),
        (2, RoundStatus.FINISHED),
    ]
    assert rounds[1].error == INTERRUPTED
    # Round 1 re-ran from m0 under a new id; the interrupted id was never sent again.
    assert [(c.round_index, c.model_id) for c in double.round_configs] == [(1, "m0"), (2, rounds[2].model_id)]
    assert {c.round_id for c in double.round_configs} == {rounds[2].id, rounds[3].id}
    assert rounds[1].id not in {c.round_id for c in double.round_configs}
    # One chain from the seed, one model per finished round, the last one seed + 3.
    assert trail_of(stores, rounds[3].model_id) == [rounds[3].model_id, rounds[2].model_id, "m0", seed_id]
    assert stores.statestore.models.count({"session_id": session.id}) == 3
    for got, seed in zip(stores.load_model(rounds[3].model_id), seed_weights, strict=True):
        np.testing.assert_allclose(got, seed + 3, atol=1e-5)
    events = event_types(stores, session.id)
    assert events.count("session_resumed") == 1 and "round_failed" in events
    (message,) = [
        e.message
        for e in stores.statestore.events.list({"session_id": session.id}).items
        if e.type == "session_resumed"
    ]
    assert (
        message.startswith("session 'crashed' resumed by controller ")
        and f"previous controller: {DEAD}" in message
    )
    assert "at round 2 of 3" in message


def test_a_round_committed_just_before_the_crash_is_finished_not_rerun(stores, seed_id, seed_weights):
    session = crashed_session(stores, seed_id, seed_weights, lease_left=-1, committed=True)
    double = ControlDouble("combiner", stores.repository)

    async def scenario() -> Session:
        async with serving(stores.statestore, [double]):
            _, controller = await resume(stores, [double])
            try:
                return await controller.wait_for_session(session.id, SESSION_BOUND)
            finally:
                await controller.close()

    stored = asyncio.run(scenario())

    assert (stored.status, stored.rounds_done) == (SessionStatus.FINISHED, 3)
    rounds = rounds_of(stores, session.id)
    assert [(r.index, r.status, r.model_id) for r in rounds[:2]] == [
        (0, RoundStatus.FINISHED, "m0"),
        (1, RoundStatus.FINISHED, "m1"),
    ]
    assert [(r.index, r.status) for r in rounds[2:]] == [(2, RoundStatus.FINISHED)]
    assert [(c.round_index, c.model_id) for c in double.round_configs] == [(2, "m1")]
    assert trail_of(stores, rounds[2].model_id) == [rounds[2].model_id, "m1", "m0", seed_id]


def test_a_held_lease_is_left_alone_until_it_lapses_then_the_watcher_resumes(stores, seed_id, seed_weights):
    session = crashed_session(stores, seed_id, seed_weights, lease_left=2.0, committed=False)
    double = ControlDouble("combiner", stores.repository)
    settings = replace(FAST, lease_check_interval=0.2)

    async def scenario() -> tuple[list[str], Session, Session]:
        async with serving(stores.statestore, [double]):
            resumed, controller = await resume(stores, [double], settings)
            try:
                untouched = await asyncio.to_thread(stores.statestore.sessions.get, session.id)
                deadline = time.monotonic() + SESSION_BOUND
                while controller.running_session_id != session.id and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)  # the watcher's takeover has no event to wait on
                return resumed, untouched, await controller.wait_for_session(session.id, SESSION_BOUND)
            finally:
                await controller.close()

    resumed, untouched, stored = asyncio.run(scenario())

    assert resumed == []
    assert (untouched.lease_owner, untouched.resumed, untouched.status) == (DEAD, 0, SessionStatus.STARTED)
    assert (stored.status, stored.rounds_done, stored.resumed) == (SessionStatus.FINISHED, 3, 1)
    assert stored.lease_owner is None


def test_a_controller_that_lost_its_lease_commits_nothing_and_leaves_the_session_to_the_new_owner(
    stores, seed_id
):
    gate = asyncio.Event()
    # Two combiners, so the reduce writes a model of its own that the refused commit must not leave behind.
    doubles = [ControlDouble(name, stores.repository, gate=gate) for name in ("combiner-a", "combiner-b")]
    # Renewals far apart: the fence at commit, not the keeper, is what must notice the loss.
    settings = replace(FAST, lease_seconds=300.0)

    async def scenario() -> Session:
        async with serving(stores.statestore, doubles):
            controller = Controller(stores.statestore, stores.repository, settings)
            await controller.start()
            try:
                session = stores.statestore.sessions.add(
                    Session(
                        name="s",
                        config=SessionConfig(rounds=2, validate=False, round_retries=0),
                        seed_model_id=seed_id,
                    )
                )
                await controller.start_session(session.id)
                for double in doubles:
                    await asyncio.wait_for(double.round_started.wait(), 10)
                # Another API process takes the session over (as after this one's lease lapsed).
                taken = {"lease_owner": "other-controller", "lease_expires": utcnow() + timedelta(hours=1)}
                await asyncio.to_thread(stores.statestore.sessions.update, session.id, taken)
                gate.set()
                stored = await controller.wait_for_session(session.id, SESSION_BOUND)
                assert controller.running_session_id is None
                return stored
            finally:
                await controller.close()

    stored = asyncio.run(scenario())

    assert (stored.status, stored.rounds_done, stored.lease_owner) == (
        SessionStatus.STARTED,
        0,
        "other-controller",
    )
    assert stores.statestore.models.count({"session_id": stored.id}) == 0
    (record,) = rounds_of(stores, stored.id)
    assert record.status == RoundStatus.RUNNING  # the new owner fails it when it resumes the session
    # Neither the combiners' models nor the reduced one is left behind: only the seed has bytes.
    assert [len(d.model_ids) for d in doubles] == [1, 1]
    assert [o.id for o in stores.repository.list_objects("models")] == [seed_id]
    assert "session_finished" not in event_types(stores, stored.id)


def test_a_session_stopped_through_another_api_process_stops_where_it_runs(stores, seed_id):
    double = ControlDouble("combiner", stores.repository, hang=True)
    settings = replace(FAST, lease_seconds=0.6)

    async def scenario() -> Session:
        async with serving(stores.statestore, [double]):
            owner = Controller(stores.statestore, stores.repository, settings)
            other = Controller(stores.statestore, stores.repository, settings)
            await owner.start()
            await other.start()
            try:
                session = stores.statestore.sessions.add(
                    Session(
                        name="s",
                        config=SessionConfig(round_timeout=60, validate=False),
                        seed_model_id=seed_id,
                    )
                )
                await owner.start_session(session.id)
                await asyncio.wait_for(double.round_started.wait(), 10)
                stopped = await other.stop_session(session.id)
                assert stopped.status == SessionStatus.TERMINATED
                await asyncio.wait_for(double.round_cancelled.wait(), SESSION_BOUND)
                return await owner.wait_for_session(session.id, SESSION_BOUND)
            finally:
                await owner.close()
                await other.close()

    stored = asyncio.run(scenario())

    assert stored.status == SessionStatus.TERMINATED
    (record,) = rounds_of(stores, stored.id)
    assert (record.status, record.error) == (RoundStatus.FAILED, "stopped")


def test_closing_the_controller_hands_the_session_off_and_the_next_one_resumes_it_at_once(stores, seed_id):
    double = ControlDouble("combiner", stores.repository, hang=True)

    async def scenario() -> tuple[Session, list[str], Session]:
        async with serving(stores.statestore, [double]):
            first = Controller(stores.statestore, stores.repository, FAST)
            await first.start()
            session = await asyncio.to_thread(create_session, stores, seed_id, rounds=2, round_timeout=60)
            await first.start_session(session.id)
            await asyncio.wait_for(double.round_started.wait(), 10)
            await first.close()  # as the API does on SIGTERM
            await asyncio.wait_for(double.round_cancelled.wait(), 10)
            handed_off = await asyncio.to_thread(stores.statestore.sessions.get, session.id)
            double.hang = False
            second = Controller(stores.statestore, stores.repository, FAST)
            try:
                resumed = await second.start()  # the lease is free: no wait for it to lapse
                return handed_off, resumed, await second.wait_for_session(session.id, SESSION_BOUND)
            finally:
                await second.close()

    handed_off, resumed, stored = asyncio.run(scenario())

    assert (handed_off.status, handed_off.lease_owner, handed_off.lease_expires) == (
        SessionStatus.STARTED,
        None,
        None,
    )
    assert resumed == [stored.id]
    assert (stored.status, stored.rounds_done, stored.resumed) == (SessionStatus.FINISHED, 2, 1)
    rounds = rounds_of(stores, stored.id)
    assert [(r.index, r.status, r.error) for r in rounds] == [
        (0, RoundStatus.FAILED, INTERRUPTED),
        (0, RoundStatus.FINISHED, None),
        (1, RoundStatus.FINISHED, None),
    ]
    assert event_types(stores, stored.id).count("session_handed_off") == 1
