"""The client swarm (benchmarks/swarm.py) speaks the real protocol: 20 in-process edge clients against a
real `scaleout api` and `scaleout combiner` take part in every round, and every update is averaged
exactly (each client adds 1, so the model after round r is the seed + r, bit for bit in float32)."""

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.swarm import InProcessTraining, Pace, check_model, is_slow, start_swarm, write_package
from scaleout.errors import PackageError
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


def test_the_slow_clients_are_a_fixed_evenly_spread_fraction() -> None:
    slow = [i for i in range(200) if is_slow(i, 0.1)]
    assert slow == list(range(9, 200, 10))
    assert [i for i in range(7) if is_slow(i, 0.5)] == [1, 3, 5]
    assert not any(is_slow(i, 0.0) for i in range(200))
    pace = Pace(train_seconds=0.5, slow_fraction=0.1, slow_factor=10)
    assert [pace.seconds(i) for i in (0, 8, 9, 10, 19)] == [0.5, 0.5, 5.0, 0.5, 5.0]


def test_a_train_step_lasts_its_seconds_unless_stopped(tmp_path: Path) -> None:
    """The step writes input + 1 after its time; stop() (an abandoned task) ends the wait at once with an
    error, as killing a training process would, so a swarm client never trains on past its task."""
    seed = get_helper("numpyhelper").save(SEED, str(tmp_path / "seed.npz"))
    training = InProcessTraining(write_package(tmp_path / "package"), train_seconds=3600)
    started = threading.Event()
    outcome: list[BaseException] = []

    def train() -> None:
        started.set()
        try:
            training.run("train", [seed, tmp_path / "out.npz"])
        except PackageError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=train)
    thread.start()
    started.wait(30)
    while not training.stop():  # 0 until the step is waiting out its hour
        thread.join(0.01)
    thread.join(30)
    assert [str(e) for e in outcome] == ["train step stopped before its 3600 s were up"]
    assert not (tmp_path / "out.npz").exists()

    quick = InProcessTraining(write_package(tmp_path / "package"), train_seconds=0.01)
    quick.run("train", [seed, tmp_path / "out.npz"])
    model = get_helper("numpyhelper").load(str(tmp_path / "out.npz"))
    assert all(np.array_equal(got, start + 1) for got, start in zip(model, SEED, strict=True))
