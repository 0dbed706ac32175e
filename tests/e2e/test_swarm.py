"""The client swarm (benchmarks/swarm.py) speaks the real protocol: 20 in-process edge clients against a
real `scaleout api` and `scaleout combiner` take part in every round, and every update is averaged
exactly (each client adds 1, so the model after round r is the seed + r, bit for bit in float32)."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.swarm import check_model, start_swarm
from scaleoututil.helpers.helpers import get_helper
from tests.e2e.federation import TEST_ENV, Federation, federation

pytestmark = pytest.mark.timeout(300)

CLIENTS = 20
ROUNDS = 2
SEED = [np.linspace(-1, 1, 3000, dtype=np.float32).reshape(30, 100), np.arange(7, dtype=np.float32)]


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    db, models = f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models"
    with federation(tmp_path, db, models, TEST_ENV) as fed:
        yield fed


def test_every_swarm_client_update_is_averaged_exactly_in_every_round(fed: Federation) -> None:
    fed.start_combiner()
    fed.api.set_active_model(get_helper("numpyhelper").save(SEED, str(fed.root / "seed.npz")))
    start_swarm(fed, CLIENTS, processes=1)
    fed.wait_for_clients(CLIENTS, timeout=120)

    session_id = fed.api.start_session(
        rounds=ROUNDS, min_clients=CLIENTS, requested_clients=CLIENTS, round_timeout=120, validate=True
    )
    session = fed.api.wait_for_session(session_id, timeout=240)

    assert session["status"] == "Finished", session
    rounds = fed.api.get_rounds(session_id=session_id, sort_key="index")["result"]
    expected = sorted(f"swarm-{i}" for i in range(CLIENTS))
    assert [sorted(c["client_id"] for c in r["clients"]) for r in rounds] == [expected] * ROUNDS
    assert all(c["num_examples"] == 10 for r in rounds for c in r["clients"])
    for index, record in enumerate(rounds, start=1):
        check_model(fed, record["model_id"], SEED, index)
    # validate tasks were answered too: one validation per client of the final model
    validations = fed.api.get_validations(model_id=rounds[-1]["model_id"])["result"]
    assert sorted(v["client_id"] for v in validations) == expected
