"""End to end: real `scaleout api`, `scaleout combiner` and `scaleout client start` processes on loopback,
driven through the public APIClient. The global models are checked to 1e-6 against numpy."""

import io
import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from scaleout.api.client import APIError
from scaleout.combiner.auth import TOKEN_HELP
from scaleout.proto import scaleout_pb2 as pb
from scaleout.proto import scaleout_pb2_grpc as rpc
from scaleoututil.helpers.helpers import get_helper
from tests.e2e.federation import (
    SCALEOUT,
    TEST_ENV,
    Federation,
    federation,
    free_port,
    make_package,
    wait_until,
)

pytestmark = pytest.mark.timeout(240)

helper = get_helper("numpyhelper")

# train adds E2E_K to every parameter and reports E2E_N examples; E2E_MODE makes it misbehave on purpose.
# With E2E_GATE set it blocks in the round given by E2E_GATE_ROUND until the test creates that file,
# after writing E2E_GATE + ".started" so the test knows it is mid-round.
TRAIN = """
import json, os, sys, time
import numpy as np
from scaleoututil.helpers.helpers import get_helper, save_metadata

helper = get_helper("numpyhelper")
in_path, out_path = sys.argv[1], sys.argv[2]
with open(in_path + "-metadata") as f:
    task = json.load(f)
mode = os.environ.get("E2E_MODE", "")
if mode == "crash":
    sys.stderr.write("boom: the local data is corrupt\\n")
    sys.exit(1)
gate = os.environ.get("E2E_GATE")
if gate and task.get("round_index") == int(os.environ.get("E2E_GATE_ROUND", "0")):
    open(gate + ".started", "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
weights = helper.load(in_path)
if mode == "wrong_shape":
    weights = [np.zeros((5, 5), dtype=w.dtype) for w in weights]
k = float(os.environ.get("E2E_K", "1"))
meta = {"num_examples": int(os.environ.get("E2E_N", "10"))}
if mode == "no_num_examples":
    meta = {"loss": 0.5}
save_metadata(meta, out_path)
helper.save([w + k for w in weights], out_path)
"""

VALIDATE = """
import sys
import numpy as np
from scaleoututil.helpers.helpers import get_helper, save_metrics

weights = get_helper("numpyhelper").load(sys.argv[1])
save_metrics({"mean": float(np.mean(weights[0]))}, sys.argv[2])
"""

SEED = [np.zeros((4, 3), dtype=np.float32), np.arange(5, dtype=np.float64)]
ENV = TEST_ENV


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    with federation(tmp_path, f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models", ENV) as fed:
        yield fed


def seeded(fed: Federation) -> str:
    """Upload the e2e package and the seed; return the seed's model id."""
    package = make_package(fed.root, TRAIN, VALIDATE)
    fed.api.set_active_package(package)
    seed_path = fed.root / "seed.npz"
    helper.save(SEED, str(seed_path))
    return fed.api.set_active_model(seed_path)


def global_model(fed: Federation, model_id: str) -> list[np.ndarray]:
    path = fed.api.download_model(model_id, fed.root / f"{model_id}.npz")
    return helper.load(str(path))


def assert_model_is_seed_plus(fed: Federation, model_id: str, shift: float) -> None:
    model = global_model(fed, model_id)
    assert [a.dtype for a in model] == [a.dtype for a in SEED]
    for array, seed in zip(model, SEED, strict=True):
        np.testing.assert_allclose(array, seed + shift, rtol=0, atol=1e-6)


def run_session(fed: Federation, timeout: float = 120, **config: Any) -> dict[str, Any]:
    session_id = fed.api.start_session(**config)
    return fed.api.wait_for_session(session_id, timeout)


def rounds_of(fed: Federation, session_id: str) -> list[dict[str, Any]]:
    return fed.api.get_rounds(session_id=session_id, sort_key="index")["result"]


def start_clients(fed: Federation, specs: list[dict[str, str]]) -> None:
    for index, env in enumerate(specs):
        fed.start_client(f"client-{index}", extra_env=env)
    fed.wait_for_clients(len(specs))


def test_global_model_is_the_weighted_average_with_one_combiner(fed: Federation) -> None:
    seeded(fed)
    fed.start_combiner()
    start_clients(
        fed, [{"E2E_K": "1", "E2E_N": "10"}, {"E2E_K": "2", "E2E_N": "20"}, {"E2E_K": "3", "E2E_N": "70"}]
    )

    session = run_session(fed, rounds=1, validate=False, min_clients=3)

    assert session["status"] == "Finished", session
    (round_,) = rounds_of(fed, session["id"])
    assert sorted(c["num_examples"] for c in round_["clients"]) == [10, 20, 70]
    assert_model_is_seed_plus(fed, round_["model_id"], (1 * 10 + 2 * 20 + 3 * 70) / 100)
    # each update's arrival at the combiner is recorded, inside the round; the round ends at the commit
    model = fed.api.get_model(round_["model_id"])
    arrivals = [datetime.fromisoformat(c["received_at"]) for c in round_["clients"]]
    assert datetime.fromisoformat(round_["started_at"]) < min(arrivals)
    assert max(arrivals) < datetime.fromisoformat(round_["finished_at"])
    assert round_["finished_at"] == model["committed_at"]


def test_two_combiners_are_reduced_weighted_by_their_examples(fed: Federation) -> None:
    seeded(fed)
    fed.start_combiner("combiner-a")
    fed.start_combiner("combiner-b")
    weights = [("1", "1"), ("2", "1"), ("3", "10"), ("4", "30")]
    start_clients(fed, [{"E2E_K": k, "E2E_N": n} for k, n in weights])

    session = run_session(fed, rounds=1, validate=False, min_clients=4)

    assert session["status"] == "Finished", session
    (round_,) = rounds_of(fed, session["id"])
    assert {c["combiner_id"] for c in round_["combiners"]} == {"combiner-a", "combiner-b"}
    assert sum(c["num_examples"] for c in round_["combiners"]) == 42
    expected = sum(int(k) * int(n) for k, n in weights) / 42
    assert_model_is_seed_plus(fed, round_["model_id"], expected)


def test_three_rounds_commit_a_trail_and_validations(fed: Federation) -> None:
    seed_id = seeded(fed)
    fed.start_combiner()
    start_clients(fed, [{"E2E_K": "1", "E2E_N": "5"}, {"E2E_K": "3", "E2E_N": "15"}])

    session = run_session(fed, rounds=3, min_clients=2)

    assert session["status"] == "Finished", session
    rounds = rounds_of(fed, session["id"])
    assert [r["status"] for r in rounds] == ["Finished"] * 3
    trail = fed.api.get_model_trail(rounds[-1]["model_id"])
    assert [m["id"] for m in trail] == [seed_id] + [r["model_id"] for r in rounds]
    assert_model_is_seed_plus(fed, rounds[-1]["model_id"], 3 * 2.5)
    validations = fed.api.get_validations(session_id=session["id"])["result"]
    assert len(validations) == 2 * 3
    means = sorted({(v["round_id"], v["metrics"]["mean"]) for v in validations}, key=lambda x: x[1])
    assert [mean for _, mean in means] == pytest.approx([2.5, 5.0, 7.5])


def test_a_client_killed_mid_round_leaves_the_round_to_the_others(fed: Federation) -> None:
    seeded(fed)
    fed.start_combiner()
    gate = fed.root / "gate"
    start_clients(
        fed, [{"E2E_K": "1", "E2E_N": "10"}, {"E2E_K": "2", "E2E_N": "30"}, {"E2E_GATE": str(gate)}]
    )
    # round_timeout is ten minutes: the round can only end within the wait below by dropping the client.
    session_id = fed.api.start_session(rounds=1, validate=False, min_clients=2, round_timeout=600)
    wait_until(lambda: Path(f"{gate}.started").exists(), 60, "the gated client to start training")

    fed.processes["client-2"].stop(signal.SIGKILL)

    session = fed.api.wait_for_session(session_id, 60)
    assert session["status"] == "Finished", session
    (round_,) = rounds_of(fed, session_id)
    assert sorted(c["client_id"] for c in round_["clients"]) == ["client-0", "client-1"]
    assert [(r["client_id"], r["reason"]) for r in round_["rejected"]] == [("client-2", left_reason(round_))]
    assert_model_is_seed_plus(fed, round_["model_id"], (1 * 10 + 2 * 30) / 40)


def left_reason(round_: dict[str, Any], client_id: str = "client-2") -> str:
    return (
        f"client {client_id} left round {round_['id']} before reporting: its task stream closed (the client "
        "stopped, lost its connection or did not answer keepalive pings)"
    )


def test_a_client_paused_mid_task_leaves_the_round_at_once_and_trains_again_once_resumed(
    tmp_path: Path,
) -> None:
    # The case: SIGSTOP mid-task, longer than keepalive and the client's deadlines, then SIGCONT.
    env = {
        **ENV,
        "SCALEOUT_COMBINER_KEEPALIVE_TIME": "1",
        "SCALEOUT_COMBINER_KEEPALIVE_TIMEOUT": "2",
        "SCALEOUT_RPC_DEADLINE": "2",
    }
    with federation(tmp_path, f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models", env) as fed:
        seeded(fed)
        fed.start_combiner()
        gate = fed.root / "gate"
        held = {"E2E_K": "3", "E2E_N": "10", "E2E_GATE": str(gate), "E2E_GATE_ROUND": "0"}
        start_clients(fed, [{"E2E_K": "1", "E2E_N": "10"}, held])
        session_id = fed.api.start_session(
            rounds=2, validate=False, min_clients=2, round_timeout=600, round_retries=30
        )
        wait_until(lambda: Path(f"{gate}.started").exists(), 60, "the held client to start training")
        paused = fed.processes["client-1"].popen.pid
        os.kill(paused, signal.SIGSTOP)
        try:
            gate.touch()  # its entry point (a process of its own) ends while the client is paused

            def first_attempt_failed() -> bool:
                rounds = rounds_of(fed, session_id)
                return bool(rounds) and rounds[0]["status"] == "Failed"

            wait_until(first_attempt_failed, 60, "the paused client's round to end without it")
            time.sleep(6)  # the pause itself: past the keepalive (3 s) and the client's deadlines (2 s)
        finally:
            os.kill(paused, signal.SIGCONT)

        session = fed.api.wait_for_session(session_id, 120)
        assert session["status"] == "Finished", session
        rounds = rounds_of(fed, session_id)
        first = rounds[0]
        assert first["error"].endswith(
            "1 update(s) accepted, min_clients is 2; selected client(s) gone before reporting: client-1"
        ), first["error"]
        # The round failed as a whole: client-0's accepted update is in no model, so it is listed as
        # rejected with its combiner's failure, next to the paused client that left.
        assert sorted((r["client_id"], r["reason"]) for r in first["rejected"]) == [
            ("client-0", f"its combiner's round failed: {first['error']}"),
            ("client-1", left_reason(first, "client-1")),
        ]
        assert first["clients"] == []
        finished = [r for r in rounds if r["status"] == "Finished"]
        assert [r["index"] for r in finished] == [0, 1]
        for round_ in finished:
            assert sorted(c["client_id"] for c in round_["clients"]) == ["client-0", "client-1"]
        assert_model_is_seed_plus(fed, finished[-1]["model_id"], 2 * (1 * 10 + 3 * 10) / 20)


def test_a_round_below_min_clients_fails_cleanly_and_keeps_the_model(fed: Federation) -> None:
    seed_id = seeded(fed)
    fed.start_combiner()
    gate = fed.root / "gate"
    start_clients(fed, [{}, {}, {"E2E_GATE": str(gate)}])
    session_id = fed.api.start_session(
        rounds=1, validate=False, min_clients=3, round_timeout=600, round_retries=0
    )
    wait_until(lambda: Path(f"{gate}.started").exists(), 60, "the gated client to start training")

    fed.processes["client-2"].stop(signal.SIGKILL)

    session = fed.api.wait_for_session(session_id, 60)
    assert session["status"] == "Failed"
    assert "min_clients" in session["error"]
    (round_,) = rounds_of(fed, session_id)
    assert round_["status"] == "Failed"
    assert round_["error"].endswith(
        "2 update(s) accepted, min_clients is 3; selected client(s) gone before reporting: client-2"
    ), round_["error"]
    assert [m["id"] for m in fed.api.get_models()["result"]] == [seed_id]


def test_bad_updates_and_a_crashing_entry_point_are_rejected_with_reasons(fed: Federation) -> None:
    seeded(fed)
    fed.start_combiner()
    modes = ["", "crash", "no_num_examples", "wrong_shape"]
    start_clients(fed, [{"E2E_MODE": mode, "E2E_K": "1", "E2E_N": "10"} for mode in modes])

    session = run_session(fed, rounds=1, validate=False, min_clients=1)

    assert session["status"] == "Finished", session
    (round_,) = rounds_of(fed, session["id"])
    assert [c["client_id"] for c in round_["clients"]] == ["client-0"]
    reasons = {r["client_id"]: r["reason"] for r in round_["rejected"]}
    assert set(reasons) == {"client-1", "client-2", "client-3"}
    assert (
        "exited with code 1" in reasons["client-1"]
        and "boom: the local data is corrupt" in reasons["client-1"]
    )
    assert "num_examples" in reasons["client-2"]
    assert "shape" in reasons["client-3"]
    assert_model_is_seed_plus(fed, round_["model_id"], 1.0)


def test_a_slow_clients_task_of_the_previous_round_is_abandoned_for_the_new_rounds_task(
    fed: Federation,
) -> None:
    # Updates of a previous round are refused as stale by the combiner (tests/combiner/test_rounds.py);
    # here the client does not even send one: the new round's task supersedes the old, still running.
    seeded(fed)
    fed.start_combiner()
    gate = fed.root / "gate"  # never opened: the held train would block for two minutes
    start_clients(fed, [{"E2E_K": "1", "E2E_N": "10"}, {"E2E_K": "3", "E2E_N": "10", "E2E_GATE": str(gate)}])
    session_id = fed.api.start_session(rounds=2, validate=False, min_clients=1, round_timeout=4)

    session = fed.api.wait_for_session(session_id, 60)
    assert session["status"] == "Finished", session
    first, second = rounds_of(fed, session_id)
    assert [c["client_id"] for c in first["clients"]] == ["client-0"]
    assert sorted(c["client_id"] for c in second["clients"]) == ["client-0", "client-1"]
    assert not [r for r in second["rejected"] if r["client_id"] == "client-1"]
    log = fed.processes["client-1"].log()
    assert f"(round {first['id']}) abandoned: superseded by task" in log
    assert "stopped the entry point of abandoned task" in log
    # Round 1: seed + 1. Round 2: (1 + 3) / 2 more.
    assert_model_is_seed_plus(fed, second["model_id"], 1 + 2)


def test_the_session_continues_when_its_combiner_restarts_between_rounds(fed: Federation) -> None:
    seeded(fed)
    combiner = fed.start_combiner()
    gate = fed.root / "gate"
    held = {"E2E_K": "1", "E2E_N": "10", "E2E_GATE": str(gate), "E2E_GATE_ROUND": "1"}
    start_clients(fed, [held, held])
    # The default retries carry the session over the combiner's absence.
    session_id = fed.api.start_session(rounds=3, validate=False, min_clients=2, round_timeout=20)
    wait_until(lambda: Path(f"{gate}.started").exists(), 60, "the second round to reach the clients")
    combiner.stop()
    restarted = datetime.now(UTC)
    fed.start_combiner(port=combiner.port)
    gate.touch()

    session = fed.api.wait_for_session(session_id, 120)
    assert session["status"] == "Finished", session
    rounds = rounds_of(fed, session_id)
    rerun = next(r for r in rounds if r["index"] == 1 and r["status"] == "Finished")
    to_round = datetime.fromisoformat(rerun["started_at"]) - restarted
    to_update = min(datetime.fromisoformat(c["received_at"]) for c in rerun["clients"]) - restarted
    print(
        f"\ncombiner restart -> round re-run: {to_round.total_seconds():.2f} s, "
        f"-> first trained update: {to_update.total_seconds():.2f} s"
    )
    assert [r["index"] for r in rounds if r["status"] == "Finished"] == [0, 1, 2]
    assert any(r["index"] == 1 and r["status"] == "Failed" for r in rounds)
    last = [r for r in rounds if r["status"] == "Finished"][-1]
    assert len(fed.api.get_model_trail(last["model_id"])) == 4  # the seed and one model per round
    assert_model_is_seed_plus(fed, last["model_id"], 3.0)


def test_a_package_with_parent_paths_is_refused_and_nothing_is_written(fed: Federation) -> None:
    tarball = fed.root / "evil.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name, data in (("scaleout.yaml", b"entry_points: {}\n"), ("../evil", b"owned")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    with pytest.raises(APIError) as refused:
        fed.api.set_active_package(tarball)

    assert refused.value.status_code == 422 and "../evil" in str(refused.value)
    assert fed.api.get_packages()["count"] == 0
    assert not (fed.root.parent / "evil").exists()


def test_a_federation_sharing_a_token_runs_and_a_client_with_a_wrong_token_never_joins(
    tmp_path: Path,
) -> None:
    token = "federation-secret"
    env = {**ENV, "SCALEOUT_API_TOKEN": token}  # one setting for the api, the combiner and the clients
    db, models = f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models"
    with federation(tmp_path, db, models, env) as fed:
        seeded(fed)
        port = free_port()
        fed.start_combiner(port=port)

        intruder = fed.start_client("intruder", extra_env={"SCALEOUT_API_TOKEN": "guess"})
        assert intruder.popen.wait(60) == 1, intruder.log()
        assert "SCALEOUT_API_TOKEN" in intruder.log()
        del fed.processes["intruder"]  # its exit is the outcome under test, not a failure of the federation

        # Around the API, straight at the combiner: refused with the message naming the fix.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stream = rpc.CombinerClientStub(channel).TaskStream(
                pb.ClientAvailableMessage(client_id="intruder")
            )
            with pytest.raises(grpc.RpcError) as refused:
                next(stream)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert refused.value.details() == TOKEN_HELP
        health = [SCALEOUT, "combiner", "health", "--port", str(port)]
        no_token = {k: v for k, v in os.environ.items() if k != "SCALEOUT_API_TOKEN"}
        assert subprocess.run(health, env=no_token, capture_output=True).returncode == 1
        assert subprocess.run([*health, "--token", token], env=no_token, capture_output=True).returncode == 0

        start_clients(fed, [{"E2E_K": "1", "E2E_N": "10"}])
        session = run_session(fed, rounds=1, validate=False, min_clients=1)

        assert session["status"] == "Finished", session
        (round_,) = rounds_of(fed, session["id"])
        assert_model_is_seed_plus(fed, round_["model_id"], 1.0)
        assert "intruder" not in {c["id"] for c in fed.api.get_clients()["result"]}
