"""Sessions that survive their processes, end to end: a `scaleout api` killed with SIGKILL mid-round
(restarted, or replaced by a second API process on the same statestore) and a combiner killed for good.

Each test prints the figure it measures (run with -s to see it): the time from the API's restart (or
the owner's death) to the next round starting, and from the combiner's loss to the training going on.
"""

import signal
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scaleout import APIClient
from scaleout.controller import INTERRUPTED, ControllerSettings
from scaleout.store.uri import S3Credentials
from tests.e2e.federation import Federation, federation, free_port, wait_until
from tests.e2e.test_federation import (
    ENV,
    SEED,
    assert_model_is_seed_plus,
    helper,
    rounds_of,
    seeded,
    start_clients,
)

pytestmark = pytest.mark.timeout(300)

LEASE = ControllerSettings()


@pytest.fixture
def fed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Federation]:
    """SQLite and files, or (param "mongodb-s3") the production stores: MongoDB wire and S3."""
    db, models, env = f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models", ENV
    if getattr(request, "param", "sqlite-files") == "mongodb-s3":
        mongo_uri: str = request.getfixturevalue("mongo_uri")
        credentials: S3Credentials = request.getfixturevalue("s3_credentials")
        db = f"{mongo_uri.rstrip('/')}/{request.getfixturevalue('mongo_database')}"
        models = f"s3://{request.getfixturevalue('s3_bucket')}?endpoint={request.getfixturevalue('s3_endpoint')}&secure=false"
        env = {
            **ENV,
            "SCALEOUT_S3_ACCESS_KEY": credentials.access_key,
            "SCALEOUT_S3_SECRET_KEY": credentials.secret_key,
        }
    with federation(tmp_path, db, models, env) as fed:
        yield fed


def started_at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["started_at"])


def rerun_of_round(api: APIClient, session_id: str, index: int, interrupted_id: str) -> dict[str, Any] | None:
    """The round `index` started after `interrupted_id`, once it exists."""
    rounds = api.get_rounds(session_id=session_id, sort_key="index")["result"]
    return next((r for r in rounds if r["index"] == index and r["id"] > interrupted_id), None)


def assert_resumed_once(fed: Federation, api: APIClient, session: dict[str, Any], owner: str) -> None:
    """Finished with one chain from the seed, one model per finished round, round 1 re-run once."""
    assert session["status"] == "Finished", session
    assert (session["rounds_done"], session["resumed"], session["lease_owner"]) == (3, 1, None)
    rounds = api.get_rounds(session_id=session["id"], sort_key="id")["result"]
    finished = [r for r in rounds if r["status"] == "Finished"]
    failed = [r for r in rounds if r["status"] == "Failed"]
    assert [r["index"] for r in finished] == [0, 1, 2]
    # Round 1 was interrupted; a combiner still winding the interrupted round down may refuse the
    # first re-run, which is retried.
    assert {r["index"] for r in failed} == {1} and failed[0]["id"] < finished[1]["id"]
    interrupted, rerun = failed[0], finished[1]
    assert interrupted["error"] == INTERRUPTED and interrupted["model_id"] is None
    assert rerun["parent_model_id"] == finished[0]["model_id"]
    # An update of the interrupted round that reached the combiner was refused as stale, never averaged.
    assert all("stale" in r["reason"] and interrupted["id"] in r["reason"] for r in rerun["rejected"])
    assert sorted(c["client_id"] for c in rerun["clients"]) == ["client-0", "client-1"]
    trail = api.get_model_trail(finished[2]["model_id"])
    assert [m["id"] for m in trail] == [session["seed_model_id"], *(r["model_id"] for r in finished)]
    assert api.get_models(session_id=session["id"])["count"] == 3
    path = api.download_model(finished[2]["model_id"], fed.root / "last.npz")
    for array, seed in zip(helper.load(str(path)), SEED, strict=True):
        np.testing.assert_allclose(array, seed + 3.0, rtol=0, atol=1e-6)
    events = api.list_entities("events", session_id=session["id"])["result"]
    (resumed,) = [e for e in events if e["type"] == "session_resumed"]
    assert f"resumed by controller {owner} at round 2 of 3" in resumed["message"]


def start_gated_session(fed: Federation) -> tuple[str, Path, dict[str, Any]]:
    """Two clients, a 3-round session; returns once round 1 is training (the clients held at a gate)."""
    seeded(fed)
    fed.start_combiner()
    gate = fed.root / "gate"
    held = {"E2E_K": "1", "E2E_N": "10", "E2E_GATE": str(gate), "E2E_GATE_ROUND": "1"}
    start_clients(fed, [held, held])
    session_id = fed.api.start_session(rounds=3, validate=False, min_clients=2, round_timeout=60)
    wait_until(lambda: Path(f"{gate}.started").exists(), 60, "round 1 to reach the clients")
    (running,) = [r for r in rounds_of(fed, session_id) if r["status"] == "Running"]
    return session_id, gate, running


def test_a_killed_api_restarted_resumes_its_session_and_reruns_the_round_under_a_new_id(
    fed: Federation,
) -> None:
    session_id, gate, interrupted = start_gated_session(fed)

    fed.processes["api"].kill()
    restarted = datetime.now(UTC)
    fed.start_api()
    rerun = wait_until(
        lambda: rerun_of_round(fed.api, session_id, 1, interrupted["id"]), 60, "round 1 to be re-run"
    )
    gate.touch()  # the held clients finish their interrupted-round updates first, one round late

    session = fed.api.wait_for_session(session_id, 180)
    print(f"\nAPI restart -> next round started: {(started_at(rerun) - restarted).total_seconds():.2f} s")
    assert_resumed_once(fed, fed.api, session, f"{socket.gethostname()}:{fed.api_port}")


@pytest.mark.parametrize("fed", ["sqlite-files", "mongodb-s3"], indirect=True)
def test_a_second_api_process_takes_the_session_over_when_the_owner_is_killed(fed: Federation) -> None:
    port = free_port()
    args = [
        "api",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--db",
        fed.db,
        "--models",
        fed.models,
    ]
    fed._spawn("api-b", args)
    other = APIClient("127.0.0.1", port)
    wait_until(lambda: other.health()["status"] == "ok", 60, "the second API to answer /health")
    session_id, gate, interrupted = start_gated_session(fed)
    assert other.get_session(session_id)["lease_owner"] == f"{socket.gethostname()}:{fed.api_port}"

    fed.processes["api"].kill()
    killed = datetime.now(UTC)
    rerun = wait_until(
        lambda: rerun_of_round(other, session_id, 1, interrupted["id"]),
        LEASE.lease_seconds + LEASE.lease_check_interval + 60,
        "the second API to take the session over",
    )
    gate.touch()

    session = other.wait_for_session(session_id, 180)
    takeover = (started_at(rerun) - killed).total_seconds()
    print(f"\nowner killed -> round re-run by the other API: {takeover:.2f} s")
    # Within the lease, the watcher's interval and a bound for a loaded machine.
    assert takeover < LEASE.lease_seconds + LEASE.lease_check_interval + 30
    assert_resumed_once(fed, other, session, f"{socket.gethostname()}:{port}")


def test_clients_of_a_combiner_killed_for_good_move_to_the_live_one_and_the_session_goes_on(
    fed: Federation,
) -> None:
    seeded(fed)
    combiners = {
        "combiner-a": fed.start_combiner("combiner-a"),
        "combiner-b": fed.start_combiner("combiner-b"),
    }
    start_clients(fed, [{"E2E_K": "1", "E2E_N": "10"}, {"E2E_K": "1", "E2E_N": "10"}])
    placed = {c["id"]: c["combiner_id"] for c in fed.api.get_clients()["result"]}
    assert sorted(placed.values()) == ["combiner-a", "combiner-b"]  # least loaded: one each
    # Default retries: a lost combiner is a retry, not a failure.
    session_id = fed.api.start_session(rounds=3, validate=False, min_clients=2, round_timeout=30)
    wait_until(lambda: fed.api.get_session(session_id)["rounds_done"] >= 1, 60, "round 0 to commit")

    combiners["combiner-a"].stop(signal.SIGKILL)
    killed = time.monotonic()

    def all_on_b() -> bool:
        clients = fed.api.get_clients()["result"]
        return all(c["combiner_id"] == "combiner-b" and c["status"] == "online" for c in clients)

    wait_until(all_on_b, 120, "the clients of combiner-a to be re-assigned to combiner-b")
    moved = time.monotonic() - killed
    session = fed.api.wait_for_session(session_id, 240)
    assert session["status"] == "Finished", session
    finished = [r for r in rounds_of(fed, session_id) if r["status"] == "Finished"]
    assert [r["index"] for r in finished] == [0, 1, 2]
    assert {c["combiner_id"] for c in finished[-1]["clients"]} == {"combiner-b"}
    assert sorted(c["client_id"] for c in finished[-1]["clients"]) == ["client-0", "client-1"]
    assert len(fed.api.get_model_trail(finished[-1]["model_id"])) == 4
    assert_model_is_seed_plus(fed, finished[-1]["model_id"], 3.0)
    print(f"\ncombiner killed -> its clients online on the live combiner: {moved:.2f} s")
