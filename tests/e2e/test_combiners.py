"""Many combiners: clients spread by least-load assignment over 4 real `scaleout combiner` processes; one is
killed with SIGKILL mid-session, its clients are re-assigned to the others and the session finishes.
Every round's model is the weighted average over all the clients of all combiners that took part, as
the round record lists them (the two-tier reduce: combiners by their clients, the controller by the
combiners' example counts)."""

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.swarm import start_swarm, varied_step
from scaleoututil.helpers.helpers import get_helper
from tests.e2e.federation import TEST_ENV, Federation, federation, wait_until

pytestmark = pytest.mark.timeout(400)

helper = get_helper("numpyhelper")
COMBINERS = [f"combiner-{i}" for i in range(4)]
CLIENTS = 40
ROUNDS = 6
SEED = [np.linspace(-1, 1, 600, dtype=np.float32).reshape(20, 30), np.zeros(3, dtype=np.float32)]
REASSIGN_BOUND = 30.0  # seconds the clients of a lost combiner may take to be online elsewhere
SLACK = 60.0  # added to REASSIGN_BOUND in the wait: the machine running the tests may be loaded


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    db, models = f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models"
    with federation(tmp_path, db, models, TEST_ENV) as fed:
        yield fed


def online_by_combiner(fed: Federation) -> Counter[str]:
    clients = fed.api.get_clients(status="online")["result"]
    return Counter(c["combiner_id"] for c in clients)


def expected_step(round_record: dict) -> float:
    """The exact FedAvg of what the round's clients added, weighted by their num_examples."""
    steps = [
        (varied_step(int(c["client_id"].removeprefix("swarm-"))), c["num_examples"])
        for c in round_record["clients"]
    ]
    assert all(n == claimed for (_, claimed), n in steps)
    total = sum(n for _, n in steps)
    return sum(add * n for (add, _), n in steps) / total


def test_clients_of_a_killed_combiner_move_to_the_others_and_the_session_finishes(fed: Federation) -> None:
    for name in COMBINERS:
        fed.start_combiner(name)
    fed.api.set_active_model(helper.save(SEED, str(fed.root / "seed.npz")))
    start_swarm(fed, CLIENTS, processes=1, varied=True)
    wait_until(lambda: sum(online_by_combiner(fed).values()) == CLIENTS, 120, f"{CLIENTS} clients online")
    spread = online_by_combiner(fed)
    assert sorted(spread) == COMBINERS, spread  # least-load assignment gave every combiner clients

    session_id = fed.api.start_session(
        rounds=ROUNDS, min_clients=CLIENTS // 2, requested_clients=CLIENTS, round_timeout=60, validate=False
    )
    wait_until(lambda: fed.api.get_rounds(session_id=session_id)["count"] >= 2, 120, "two rounds")
    victim = "combiner-1"
    fed.processes[victim].stop(signal.SIGKILL)
    killed_at = time.monotonic()
    survivors = set(COMBINERS) - {victim}

    def all_on_survivors() -> bool:
        spread = online_by_combiner(fed)
        return sum(n for c, n in spread.items() if c in survivors) == CLIENTS

    wait_until(all_on_survivors, REASSIGN_BOUND + SLACK, f"{CLIENTS} clients online on {sorted(survivors)}")
    print(f"clients of {victim} re-assigned within {time.monotonic() - killed_at:.1f} s")
    session = fed.api.wait_for_session(session_id, timeout=300)

    assert session["status"] == "Finished", session
    rounds = fed.api.get_rounds(session_id=session_id, sort_key="index")["result"]
    finished = [r for r in rounds if r["status"] == "Finished"]
    assert len(finished) == ROUNDS
    assert {c["combiner_id"] for c in finished[-1]["clients"]} == survivors
    expected = [a.astype(np.float64) for a in SEED]
    for record in finished:
        expected = [a + expected_step(record) for a in expected]
        path = fed.api.download_model(record["model_id"], fed.root / f"{record['model_id']}.npz")
        for got, want in zip(helper.load(str(path)), expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
