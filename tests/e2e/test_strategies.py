"""End to end, real processes: server optimizers, robust aggregators and central DP as configured by
a session's aggregator and aggregator_kwargs. Models are checked against numpy references."""

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from dp_accounting import dp_event, rdp

from tests.e2e.federation import Federation, federation, wait_until
from tests.e2e.test_federation import (
    ENV,
    SEED,
    global_model,
    rounds_of,
    run_session,
    seeded,
    start_clients,
)
from tests.e2e.test_resume import rerun_of_round

pytestmark = pytest.mark.timeout(400)

# Every client adds k to every parameter: the weighted mean's Delta is the same every round.
HONEST = [{"E2E_K": "1", "E2E_N": "10"}, {"E2E_K": "3", "E2E_N": "30"}]
DELTA = (1 * 10 + 3 * 30) / 40


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    with federation(tmp_path, f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models", ENV) as fed:
        yield fed


def adam_trajectory(
    rounds: int, eta: float, b1: float, b2: float, tau: float, delta: float = DELTA
) -> list[float]:
    """The shift from the seed after each round of FedAdam (Reddi et al. 2021, Alg. 2), Delta each round."""
    x, m, v, shifts = 0.0, 0.0, tau**2, []
    for _ in range(rounds):
        m = b1 * m + (1 - b1) * delta
        v = b2 * v + (1 - b2) * delta**2
        x += eta * m / (math.sqrt(v) + tau)
        shifts.append(x)
    return shifts


def assert_shift(fed: Federation, model_id: str, shift: float) -> None:
    for array, seed in zip(global_model(fed, model_id), SEED, strict=True):
        np.testing.assert_allclose(array, seed + shift, rtol=0, atol=1e-6)


ADAM = {"server_lr": 0.5, "beta1": 0.8, "beta2": 0.9, "tau": 0.01}


def test_fedadam_follows_the_reference_trajectory_and_a_continued_session_continues_its_state(
    fed: Federation,
) -> None:
    seed_id = seeded(fed)
    fed.start_combiner()
    start_clients(fed, HONEST)
    reference = adam_trajectory(3, ADAM["server_lr"], ADAM["beta1"], ADAM["beta2"], ADAM["tau"])

    whole = run_session(
        fed,
        rounds=3,
        validate=False,
        min_clients=2,
        aggregator="fedadam",
        aggregator_kwargs=ADAM,
        model_id=seed_id,
    )
    assert whole["status"] == "Finished", whole
    rounds = rounds_of(fed, whole["id"])
    for round_, shift in zip(rounds, reference, strict=True):
        assert_shift(fed, round_["model_id"], shift)
        model = fed.api.get_model(round_["model_id"])
        assert model["optimizer_state_id"] == round_["optimizer_state_id"] == f"{model['id']}.fedadam.state"

    first = run_session(
        fed,
        rounds=2,
        validate=False,
        min_clients=2,
        aggregator="fedadam",
        aggregator_kwargs=ADAM,
        model_id=seed_id,
    )
    last = rounds_of(fed, first["id"])[-1]["model_id"]
    rest = run_session(
        fed,
        rounds=1,
        validate=False,
        min_clients=2,
        aggregator="fedadam",
        aggregator_kwargs=ADAM,
        model_id=last,
    )
    assert rest["status"] == "Finished", rest
    # the same model as the uninterrupted session: m and v came with the model, not reset
    assert_shift(fed, rounds_of(fed, rest["id"])[-1]["model_id"], reference[2])


def test_a_session_resumed_after_an_api_restart_continues_the_optimizer(fed: Federation) -> None:
    seeded(fed)
    fed.start_combiner()
    gate = fed.root / "gate"
    held = {"E2E_K": "1", "E2E_N": "10", "E2E_GATE": str(gate), "E2E_GATE_ROUND": "1"}
    start_clients(fed, [held, held])
    session_id = fed.api.start_session(
        rounds=3,
        validate=False,
        min_clients=2,
        round_timeout=60,
        aggregator="fedadam",
        aggregator_kwargs=ADAM,
    )
    wait_until(lambda: Path(f"{gate}.started").exists(), 60, "round 1 to reach the clients")
    (interrupted,) = [r for r in rounds_of(fed, session_id) if r["status"] == "Running"]

    fed.processes["api"].kill()  # the controller dies mid-round 1, after round 0 stored its state
    fed.start_api()
    wait_until(lambda: rerun_of_round(fed.api, session_id, 1, interrupted["id"]), 60, "round 1 to be re-run")
    gate.touch()

    session = fed.api.wait_for_session(session_id, 180)
    assert session["status"] == "Finished" and session["resumed"] == 1, session
    finished = [r for r in rounds_of(fed, session_id) if r["status"] == "Finished"]
    reference = adam_trajectory(3, ADAM["server_lr"], ADAM["beta1"], ADAM["beta2"], ADAM["tau"], delta=1.0)
    for round_, shift in zip(finished, reference, strict=True):
        assert_shift(fed, round_["model_id"], shift)  # as if never interrupted: m and v were not reset


@pytest.mark.parametrize(
    ("aggregator", "kwargs"),
    [("median", {}), ("trimmed_mean", {"beta": 0.2}), ("krum", {"f": 1}), ("fedavg", {})],
)
def test_robust_aggregators_keep_the_model_in_the_honest_range_and_fedavg_does_not(
    fed: Federation, aggregator: str, kwargs: dict[str, float]
) -> None:
    seed_id = seeded(fed)
    fed.start_combiner()
    honest = [{"E2E_K": str(k), "E2E_N": "10"} for k in (1, 2, 3, 4)]
    start_clients(fed, [*honest, {"E2E_K": "1e6", "E2E_N": "10"}])

    session = run_session(
        fed,
        rounds=1,
        validate=False,
        min_clients=5,
        aggregator=aggregator,
        aggregator_kwargs=kwargs,
        model_id=seed_id,
    )

    assert session["status"] == "Finished", session
    (round_,) = rounds_of(fed, session["id"])
    shifts = [a - s for a, s in zip(global_model(fed, round_["model_id"]), SEED, strict=True)]
    within = all(((shift >= 1 - 1e-6) & (shift <= 4 + 1e-6)).all() for shift in shifts)
    assert within == (aggregator != "fedavg"), shifts
    if aggregator == "median":  # the median of 1, 2, 3, 4, 1e6
        for shift in shifts:
            np.testing.assert_allclose(shift, 3.0, rtol=0, atol=1e-6)


def test_dp_clips_each_update_and_averages_unweighted(fed: Federation) -> None:
    seed_id = seeded(fed)
    fed.start_combiner()
    start_clients(fed, HONEST)
    kwargs = {"dp_clip_norm": 1.0}

    session = run_session(
        fed, rounds=1, validate=False, min_clients=2, aggregator_kwargs=kwargs, model_id=seed_id
    )

    assert session["status"] == "Finished", session
    (round_,) = rounds_of(fed, session["id"])
    # each client's delta (k on each of the 17 parameters) is clipped to norm 1: 1/sqrt(17) each, and
    # the unweighted mean of two such deltas is that again (weighted by examples it would be too)
    assert_shift(fed, round_["model_id"], 1 / math.sqrt(17))
    assert round_["epsilon"] is None  # clipping alone spends no privacy budget it can state


def test_dp_noise_reports_the_accountants_epsilon_per_round(fed: Federation) -> None:
    seed_id = seeded(fed)
    fed.start_combiner()
    start_clients(fed, [*HONEST, {"E2E_K": "2", "E2E_N": "20"}])
    kwargs = {"dp_clip_norm": 1.0, "dp_noise_multiplier": 1.3, "dp_delta": 1e-4}

    # 2 of the 3 connected clients are selected each round: the accountant's sampling rate is 2/3
    session = run_session(
        fed,
        rounds=2,
        validate=False,
        min_clients=2,
        requested_clients=2,
        aggregator_kwargs=kwargs,
        model_id=seed_id,
    )

    assert session["status"] == "Finished", session
    rounds = rounds_of(fed, session["id"])
    for count, round_ in enumerate(rounds, start=1):
        accountant = rdp.RdpAccountant()
        accountant.compose(dp_event.PoissonSampledDpEvent(2 / 3, dp_event.GaussianDpEvent(1.3)), count)
        assert round_["epsilon"] == pytest.approx(accountant.get_epsilon(1e-4), rel=1e-12)
        assert round_["dp_sampling_rate"] == pytest.approx(2 / 3, rel=1e-15)
    # noise of std 1.3 * 1 / 2 moved the model off the clipped mean (every clipped delta is 1/sqrt(17))
    shift = global_model(fed, rounds[0]["model_id"])[1] - SEED[1]
    assert np.abs(shift - 1 / math.sqrt(17)).max() > 1e-3
