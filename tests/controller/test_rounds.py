"""Rounds that fail: retries, no combiner, a combiner that never answers, min_clients across combiners."""

import asyncio
from dataclasses import replace
from datetime import timedelta

from scaleout.store.entities import Combiner, RoundStatus, SessionStatus, utcnow
from tests.controller.control_double import ControlDouble
from tests.controller.harness import FAST, event_types, rounds_of, run_session

ERROR = "round r1: 1 update(s) by the timeout of 5 s, min_clients is 2"


def test_failing_round_is_retried_then_the_session_fails_with_its_error(stores, seed_id):
    double = ControlDouble("combiner", stores.repository, fail_with=ERROR)
    session = asyncio.run(run_session(stores, [double], seed_id, rounds=3, round_retries=2))

    assert session.status == SessionStatus.FAILED
    assert ERROR in session.error and "round 1 failed after 3 attempt(s)" in session.error
    rounds = rounds_of(stores, session.id)
    assert [(r.index, r.status) for r in rounds] == [(0, RoundStatus.FAILED)] * 3
    assert all(ERROR in r.error for r in rounds)
    assert len(double.round_configs) == 3
    assert stores.statestore.models.count({"session_id": session.id}) == 0
    assert event_types(stores, session.id).count("round_retry") == 2


def test_a_round_that_succeeds_on_retry_lets_the_session_finish(stores, seed_id):
    double = ControlDouble("combiner", stores.repository, fail_with=ERROR, fail_times=1)
    session = asyncio.run(run_session(stores, [double], seed_id, rounds=2, round_retries=1))

    assert session.status == SessionStatus.FINISHED, session.error
    rounds = rounds_of(stores, session.id)
    assert [(r.index, r.status) for r in rounds] == [
        (0, RoundStatus.FAILED),
        (0, RoundStatus.FINISHED),
        (1, RoundStatus.FINISHED),
    ]
    assert rounds[2].parent_model_id == rounds[1].model_id


def test_no_combiner_online_fails_the_session_with_the_reason(stores, seed_id):
    stale = Combiner(
        id="old", name="old", address="127.0.0.1", port=1, last_seen=utcnow() - timedelta(hours=1)
    )
    stores.statestore.combiners.add(stale)
    session = asyncio.run(run_session(stores, [], seed_id))

    assert session.status == SessionStatus.FAILED
    assert "no combiner with connected clients" in session.error
    (record,) = rounds_of(stores, session.id)
    assert record.status == RoundStatus.FAILED and "no combiner with connected clients" in record.error


def test_a_combiner_without_clients_is_not_chosen(stores, seed_id):
    empty = ControlDouble("empty", stores.repository, clients={})
    session = asyncio.run(run_session(stores, [empty], seed_id))

    assert session.status == SessionStatus.FAILED
    assert "no combiner with connected clients (empty: 0 connected clients)" in session.error
    assert empty.round_configs == []


def test_a_combiner_that_never_answers_fails_the_round_at_the_deadline(stores, seed_id):
    double = ControlDouble("combiner", stores.repository, hang=True)
    settings = replace(FAST, round_margin=0.5)
    session = asyncio.run(run_session(stores, [double], seed_id, settings, round_timeout=0.5))

    # The message names the bound (round_timeout + round_margin) that cut the call off.
    assert session.status == SessionStatus.FAILED
    assert "combiner combiner: no answer to StartRound within 1 s" in session.error
    (record,) = rounds_of(stores, session.id)
    assert record.status == RoundStatus.FAILED
    assert record.combiners[0].combiner_id == "combiner" and record.combiners[0].error
    assert double.round_cancelled.is_set()


def test_one_failed_combiner_is_ignored_when_the_others_reach_min_clients(stores, seed_id):
    good = ControlDouble("c1", stores.repository, clients={"a": 2, "b": 2})
    bad = ControlDouble("c2", stores.repository, clients={"c": 1}, fail_with="c2 lost its clients")
    session = asyncio.run(run_session(stores, [good, bad], seed_id, min_clients=2))

    assert session.status == SessionStatus.FINISHED, session.error
    (record,) = rounds_of(stores, session.id)
    assert record.model_id == good.model_ids[0]
    assert {c.combiner_id: c.error for c in record.combiners} == {
        "c1": None,
        "c2": "combiner c2: c2 lost its clients",
    }
    # The record's clients are exactly the updates in the model; the failed combiner's are rejected.
    assert sorted(c.client_id for c in record.clients) == ["a", "b"]
    assert [(r.client_id, r.combiner_id, r.reason) for r in record.rejected if r.client_id == "c"] == [
        ("c", "c2", "its combiner's round failed: combiner c2: c2 lost its clients")
    ]


def test_each_combiner_needs_one_update_when_min_clients_spans_several(stores, seed_id):
    # min_clients 3 over 2 + 2 clients: a combiner losing one client must still bring its other update.
    first = ControlDouble("c1", stores.repository, clients={"a": 2, "b": 2})
    second = ControlDouble("c2", stores.repository, clients={"c": 1, "d": 1})
    session = asyncio.run(run_session(stores, [first, second], seed_id, min_clients=3))

    assert session.status == SessionStatus.FINISHED, session.error
    assert [c.min_clients for c in first.round_configs + second.round_configs] == [1, 1]


def test_min_clients_counts_accepted_updates_across_combiners(stores, seed_id):
    good = ControlDouble("c1", stores.repository, clients={"a": 2})
    bad = ControlDouble("c2", stores.repository, clients={"b": 1}, fail_with="no update by the timeout")
    session = asyncio.run(run_session(stores, [good, bad], seed_id, min_clients=2))

    assert session.status == SessionStatus.FAILED
    assert "1 accepted update(s) across 1 combiner(s), min_clients is 2" in session.error
    # Each combiner was asked for what it can give; the sum is checked by the controller.
    assert good.round_configs[0].min_clients == 1 and bad.round_configs[0].min_clients == 1
    # The successful combiner's partial model is in no trail: its bytes are freed.
    assert not stores.repository.model_exists(good.model_ids[0])


def test_fewer_connected_clients_than_min_clients_fails_before_starting(stores, seed_id):
    double = ControlDouble("combiner", stores.repository, clients={"a": 1})
    session = asyncio.run(run_session(stores, [double], seed_id, min_clients=3))

    assert session.status == SessionStatus.FAILED
    assert "1 connected client(s) on 1 combiner(s), min_clients is 3" in session.error
    assert double.round_configs == []


def test_validation_is_started_with_the_new_model_id(stores, seed_id):
    double = ControlDouble("combiner", stores.repository)
    session = asyncio.run(run_session(stores, [double], seed_id, rounds=2, validate=True, round_timeout=7))

    assert session.status == SessionStatus.FINISHED, session.error
    rounds = rounds_of(stores, session.id)
    sent = [(v.session_id, v.round_id, v.model_id, v.timeout) for v in double.validation_configs]
    assert sent == [(session.id, r.id, r.model_id, 7.0) for r in rounds]
    events = stores.statestore.events.list({"type": "validation_finished"}, sort_key="id").items
    # The combiner is named "combiner": said once, not "combiner combiner stored".
    assert [e.message for e in events] == [
        f"combiner stored 2 validation(s) of model {r.model_id}" for r in rounds
    ]


def test_a_failed_validation_is_an_event_not_a_session_failure(stores, seed_id):
    double = ControlDouble("combiner", stores.repository, validation_error="validate entry point missing")
    session = asyncio.run(run_session(stores, [double], seed_id, rounds=2, validate=True))

    assert session.status == SessionStatus.FINISHED, session.error
    failures = stores.statestore.events.list({"session_id": session.id, "type": "validation_failed"}).items
    assert len(failures) == 2
    assert "validate entry point missing" in failures[0].message and failures[0].combiner_id == "combiner"


def test_retries_stop_once_the_retry_timeout_has_passed(stores, seed_id):
    double = ControlDouble("combiner", stores.repository, fail_with=ERROR)
    settings = replace(FAST, retry_delay=0.05, retry_delay_max=0.05)
    session = asyncio.run(
        run_session(stores, [double], seed_id, settings, round_retries=1_000, retry_timeout=0.5)
    )

    assert session.status == SessionStatus.FAILED
    assert "(retry_timeout of 0.5 s spent)" in session.error and ERROR in session.error
    attempts = len(double.round_configs)
    assert 2 <= attempts < 1_000
    assert f"round 1 failed after {attempts} attempt(s)" in session.error
    assert event_types(stores, session.id).count("round_retry") == attempts - 1
