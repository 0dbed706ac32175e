"""Async (FedBuff) sessions end to end: real `scaleout api`, `scaleout combiner` and `scaleout client
start` processes on loopback. Every client adds its E2E_K to each weight, so an update's delta is
exactly K, and each committed version must equal, to 1e-6, the previous one plus
server_lr * sum(n s(tau) K) / sum(n) over the updates its Round record lists (with their staleness)."""

import math
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.federation import Federation, federation, make_package, wait_until
from tests.e2e.test_federation import ENV, SEED, VALIDATE, global_model, helper, rounds_of, start_clients

pytestmark = pytest.mark.timeout(400)

# E2E_SLEEP seconds of "training" (the slow clients), E2E_MODE crash (exits 1) or hang (never returns).
TRAIN = """
import os, sys, time
from scaleoututil.helpers.helpers import get_helper, save_metadata

mode = os.environ.get("E2E_MODE", "")
if mode == "crash":
    sys.stderr.write("boom: the local data is corrupt\\n")
    sys.exit(1)
if mode == "hang":
    time.sleep(3600)
time.sleep(float(os.environ.get("E2E_SLEEP", "0")))
helper = get_helper("numpyhelper")
weights = helper.load(sys.argv[1])
save_metadata({"num_examples": int(os.environ["E2E_N"])}, sys.argv[2])
helper.save([w + float(os.environ["E2E_K"]) for w in weights], sys.argv[2])
"""
STALE = (
    r"stale update: trained on version (?P<base>\d+), the current version is (?P<current>\d+) "
    r"and max_staleness is 0"
)


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    with federation(tmp_path, f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models", ENV) as fed:
        yield fed


def seeded(fed: Federation) -> str:
    fed.api.set_active_package(make_package(fed.root, TRAIN, VALIDATE))
    helper.save(SEED, str(fed.root / "seed.npz"))
    return fed.api.set_active_model(fed.root / "seed.npz")


def client(k: float, n: int, sleep: float = 0.0, mode: str = "") -> dict[str, str]:
    return {"E2E_K": str(k), "E2E_N": str(n), "E2E_SLEEP": str(sleep), "E2E_MODE": mode}


def versions(fed: Federation, session_id: str) -> list[dict[str, Any]]:
    return [r for r in rounds_of(fed, session_id) if r["status"] == "Finished"]


def assert_exact_versions(
    fed: Federation,
    seed_id: str,
    records: list[dict[str, Any]],
    k: dict[str, float],
    server_lr: float = 1.0,
    exponent: float = 0.5,
) -> None:
    """One trail from the seed, and x_k = x_{k-1} + server_lr * sum(n s(tau) K) / sum(n) exactly."""
    assert [r["index"] for r in records] == list(range(len(records)))
    parents = [seed_id, *(r["model_id"] for r in records[:-1])]
    assert [r["parent_model_id"] for r in records] == parents
    shift = 0.0
    for record in records:
        assert record["clients"], record
        for c in record["clients"]:
            assert 0 <= c["base_version"] <= record["index"] and c["staleness"] >= 0
            assert c["staleness_weight"] == pytest.approx((1 + c["staleness"]) ** -exponent, abs=1e-12)
        total = sum(c["num_examples"] for c in record["clients"])
        folded = math.fsum(
            c["num_examples"] * c["staleness_weight"] * k[c["client_id"]] for c in record["clients"]
        )
        shift += server_lr * folded / total
        model = global_model(fed, record["model_id"])
        assert [a.dtype for a in model] == [a.dtype for a in SEED]
        for array, seed in zip(model, SEED, strict=True):
            np.testing.assert_allclose(array, seed + shift, rtol=0, atol=1e-6)


def test_versions_are_exact_and_neither_slow_nor_crashing_nor_hanging_clients_block_them(
    fed: Federation,
) -> None:
    seed_id = seeded(fed)
    fed.start_combiner()
    # The fast client trains 0.5 s a step, so the 16 folds of 8 versions take longer than the slow
    # client's 3 s: on a quiet machine an instant fast client committed them all before it returned.
    specs = [
        client(1, 10, sleep=0.5),
        client(2, 30, sleep=3.0),
        client(5, 10, mode="crash"),
        client(7, 10, mode="hang"),
    ]
    start_clients(fed, specs)
    k = {f"client-{i}": float(s["E2E_K"]) for i, s in enumerate(specs)}
    # round_timeout (each task's timeout) far beyond the session: the hanging client is never freed by it
    session_id = fed.api.start_session(
        mode="async", max_versions=8, buffer_size=2, server_lr=0.7, round_timeout=300, validate=False
    )
    wait_until(lambda: fed.api.get_session(session_id)["rounds_done"] >= 2, 120, "version 2 to commit")
    fed.processes["client-3"].stop(signal.SIGKILL)  # the hanging client's process dies mid-task

    session = fed.api.wait_for_session(session_id, 240)

    assert session["status"] == "Finished", session
    assert session["rounds_done"] == 8
    records = versions(fed, session_id)
    assert len(records) == 8 and len(rounds_of(fed, session_id)) == 8
    assert_exact_versions(fed, seed_id, records, k, server_lr=0.7)
    folded = [c for r in records for c in r["clients"]]
    assert {c["client_id"] for c in folded} == {"client-0", "client-1"}
    assert all(len(r["clients"]) >= 2 for r in records)  # a flush takes what folded by then
    # the slow client's updates come in versions late, weighted down
    assert any(c["staleness"] > 0 for c in folded if c["client_id"] == "client-1")
    events = fed.api.list_entities("events", session_id=session_id)["result"]
    (finished,) = [e for e in events if e["type"] == "session_finished"]
    assert finished["message"] == "8 version(s) committed; max_versions of 8 reached"
    assert sum(e["type"] == "version_committed" for e in events) == 8


def test_updates_staler_than_max_staleness_are_rejected_with_their_reason(fed: Federation) -> None:
    seed_id = seeded(fed)
    fed.start_combiner()
    specs = [client(1, 10), client(3, 20, sleep=3.0)]
    start_clients(fed, specs)
    session_id = fed.api.start_session(
        mode="async", max_versions=1000, buffer_size=1, max_staleness=0, round_timeout=300, validate=False
    )

    # The session runs until the slow client's update came back stale: the fast client commits
    # versions while the slow one trains 3 s longer. (Ending it by max_versions instead raced the
    # fast client: it could commit them all before the slow update arrived.)
    def slow_rejected() -> bool:
        return any(x["client_id"] == "client-1" for r in versions(fed, session_id) for x in r["rejected"])

    wait_until(slow_rejected, 240, "the slow client's stale update to be rejected")
    fed.api.stop_session(session_id)
    session = fed.api.wait_for_session(session_id, 120)

    assert session["status"] == "Terminated", session
    records = versions(fed, session_id)
    assert_exact_versions(fed, seed_id, records, {"client-0": 1.0, "client-1": 3.0})
    assert all(c["staleness"] == 0 for r in records for c in r["clients"])
    rejected = [x for r in records for x in r["rejected"]]
    for x in rejected:
        stale = re.match(STALE, x["reason"])
        assert stale is not None and x["combiner_id"] == "combiner", x
        assert int(stale["current"]) > int(stale["base"])


def test_a_killed_api_resumes_the_async_session_with_consistent_versions(fed: Federation) -> None:
    seed_id = seeded(fed)
    fed.start_combiner()
    specs = [client(1, 10, sleep=0.5), client(2, 30, sleep=0.5)]
    start_clients(fed, specs)
    session_id = fed.api.start_session(
        mode="async", max_versions=8, buffer_size=2, round_timeout=60, validate=False
    )
    wait_until(lambda: fed.api.get_session(session_id)["rounds_done"] >= 2, 120, "version 2 to commit")
    live = fed.api.get_session_progress(session_id)
    assert (live["mode"], live["buffer_size"], list(live["combiners"])) == ("async", 2, ["combiner"])
    assert live["version"] >= 2 and live["buffer_fill"] >= 0 and 0 <= live["in_flight"] <= 2

    fed.processes["api"].kill()
    fed.start_api()
    session = fed.api.wait_for_session(session_id, 240)

    assert session["status"] == "Finished", session
    assert (session["rounds_done"], session["resumed"]) == (8, 1)
    records = versions(fed, session_id)
    assert_exact_versions(fed, seed_id, records, {"client-0": 1.0, "client-1": 2.0})
    # a version being built when the controller died is in no record; one whose commit it cut is Failed
    assert all(r["error"] for r in rounds_of(fed, session_id) if r["status"] != "Finished")
    assert fed.api.get_models(session_id=session_id)["count"] == 8
    events = fed.api.list_entities("events", session_id=session_id)["result"]
    (resumed,) = [e for e in events if e["type"] == "session_resumed"]
    assert " at version " in resumed["message"]
    assert sum(e["type"] == "async_started" for e in events) == 2


def test_two_combiners_fold_into_one_consistent_trail_of_versions(fed: Federation) -> None:
    seed_id = seeded(fed)
    fed.start_combiner("combiner-a")
    fed.start_combiner("combiner-b")
    specs = [client(1, 10), client(2, 20, sleep=0.5), client(3, 30), client(4, 40, sleep=1.0)]
    start_clients(fed, specs)
    placed = {c["id"]: c["combiner_id"] for c in fed.api.get_clients()["result"]}
    assert sorted(placed.values()) == ["combiner-a", "combiner-a", "combiner-b", "combiner-b"]
    k = {f"client-{i}": float(s["E2E_K"]) for i, s in enumerate(specs)}

    session = fed.api.wait_for_session(
        fed.api.start_session(
            mode="async", max_versions=6, buffer_size=3, round_timeout=120, validate_every=2
        ),
        240,
    )

    assert session["status"] == "Finished", session
    records = versions(fed, session["id"])
    assert_exact_versions(fed, seed_id, records, k)
    folded = [c for r in records for c in r["clients"]]
    assert {c["combiner_id"] for c in folded} == {"combiner-a", "combiner-b"}
    assert all(c["combiner_id"] == placed[c["client_id"]] for c in folded)
    for record in records:  # each version's combiners add up to its updates
        assert sum(c["num_examples"] for c in record["combiners"]) == sum(
            c["num_examples"] for c in record["clients"]
        )
    # every second version is validated by the clients of both combiners, while training goes on;
    # its metric is the mean of the version's first array: the seed's zeros plus the version's shift
    events = fed.api.list_entities("events", session_id=session["id"])["result"]
    skipped = {e["round_id"] for e in events if e["type"] == "validation_skipped"}
    due = {r["id"]: r for r in records if (r["index"] + 1) % 2 == 0 and r["id"] not in skipped}
    validations = fed.api.get_validations(session_id=session["id"])["result"]
    # (a client validating when its next train task arrives abandons the validation: client/task_loop.py
    # lets a train task of another round supersede any running task, so not every client reports)
    assert validations and {v["round_id"] for v in validations} <= set(due)
    for v in validations:
        expected = float(np.mean(global_model(fed, due[v["round_id"]]["model_id"])[0]))
        assert v["metrics"]["mean"] == pytest.approx(expected, abs=1e-6)
        assert v["model_id"] == due[v["round_id"]]["model_id"]
