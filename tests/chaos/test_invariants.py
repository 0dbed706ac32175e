"""The chaos test's own checks catch what they claim to: run on crafted records and bytes, without a
federation (these run in every `make test`, the chaos sessions only when enabled)."""

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scaleout.store.filesystem import FileModelRepository
from tests.chaos import invariants
from tests.chaos.invariants import Records
from tests.chaos.package import SEED, client_specs, helper
from tests.chaos.schedule import FaultKind, make_schedule

SPECS = {s.name: s for s in client_specs(3)}  # k = 1.0, 1.75, 2.5; n = 10, 17, 24


def client(name: str, combiner: str = "combiner-0") -> dict[str, Any]:
    return {"client_id": name, "combiner_id": combiner, "num_examples": SPECS[name].n}


def finished_round(index: int, parent: str, model: str, clients: list[dict[str, Any]]) -> dict[str, Any]:
    combiners: dict[str, int] = {}
    for c in clients:
        combiners[c["combiner_id"]] = combiners.get(c["combiner_id"], 0) + c["num_examples"]
    return {
        "id": f"round-{index}",
        "index": index,
        "status": "Finished",
        "parent_model_id": parent,
        "model_id": model,
        "clients": clients,
        "combiners": [
            {"combiner_id": name, "model_id": f"{name}-{index}", "num_examples": n, "error": None}
            for name, n in combiners.items()
        ],
    }


def records(rounds: list[dict[str, Any]], trail: list[str] | None = None) -> Records:
    models = [{"id": r["model_id"]} for r in rounds]
    return Records(
        session={"status": "Finished", "rounds_done": len(rounds), "error": None},
        rounds=rounds,
        models=models,
        seed_model={"id": "seed"},
        trail=trail if trail is not None else ["seed", *(m["id"] for m in models)],
    )


def save(scratch: Path, model_id: str, shift: float) -> None:
    helper.save([s + shift for s in SEED], str(scratch / f"{model_id}.npz"))


def test_a_stale_update_averaged_into_a_round_is_reported_at_that_round(tmp_path: Path) -> None:
    all_three = [client("client-0"), client("client-1"), client("client-2")]
    first = (1.0 * 10 + 1.75 * 17 + 2.5 * 24) / 51
    # round 1's client-2 update was trained on the seed (round 0's model was not its input): it adds
    # seed + 2.5 instead of model_1 + 2.5, so round 1 lands lower by first * 24 / 51.
    stale = first + first - first * 24 / 51
    save(tmp_path, "m0", first)
    save(tmp_path, "m1", stale)
    rounds = [finished_round(0, "seed", "m0", all_three), finished_round(1, "m0", "m1", all_three)]

    problems = invariants.exact_values(records(rounds), SPECS, tmp_path)

    assert len(problems) == 1 and problems[0].startswith("round 1 model m1 is seed + "), problems
    assert f"expected seed + {2 * first:.6f}" in problems[0]


def test_exact_models_from_rounds_with_fewer_clients_hold(tmp_path: Path) -> None:
    save(tmp_path, "m0", (1.0 * 10 + 2.5 * 24) / 34)
    save(tmp_path, "m1", (1.0 * 10 + 2.5 * 24) / 34 + 1.75)
    rounds = [
        finished_round(0, "seed", "m0", [client("client-0"), client("client-2", "combiner-1")]),
        finished_round(1, "m0", "m1", [client("client-1")]),
    ]

    assert invariants.exact_values(records(rounds), SPECS, tmp_path) == []
    assert invariants.round_records_consistent(records(rounds), SPECS) == []
    assert invariants.one_model_per_round(records(rounds), 2) == []


def test_a_client_listed_as_accepted_whose_combiner_failed_is_reported() -> None:
    round_ = finished_round(0, "seed", "m0", [client("client-0"), client("client-1", "combiner-1")])
    round_["combiners"][1].update(model_id=None, num_examples=0, error="1 update(s) by the timeout")

    problems = invariants.round_records_consistent(records([round_]), SPECS)

    assert problems == [
        "round 0 (round-0) lists ['client-1'] as accepted, but their combiner combiner-1 failed "
        "('1 update(s) by the timeout'): their updates are not in the committed model"
    ]


def test_a_second_commit_for_a_round_and_a_broken_trail_are_reported() -> None:
    rounds = [finished_round(0, "seed", "m0", [client("client-0")])]
    stored = records(rounds, trail=["seed", "m0", "m0b"])
    stored.models.append({"id": "m0b"})

    problems = invariants.one_model_per_round(stored, 1)

    assert problems == [
        "models committed in the session by no finished round: ['m0b']",
        "model trail is ['seed', 'm0', 'm0b'], expected the seed then one model per round ['seed', 'm0']",
    ]


def test_a_model_whose_bytes_differ_from_its_checksum_is_reported(tmp_path: Path) -> None:
    repository = FileModelRepository(tmp_path / "repo")
    save(tmp_path, "m0", 1.0)
    size = repository.put_model("m0", tmp_path / "m0.npz")
    digest = hashlib.sha256((tmp_path / "m0.npz").read_bytes()).hexdigest()
    stored = records([finished_round(0, "seed", "m0", [client("client-0")])])
    stored.seed_model = {"id": "seed", "size": 1, "sha256": "0" * 64}  # not in the repository at all
    stored.models[0].update(size=size, sha256=digest[::-1])

    problems = invariants.bytes_and_checksums(stored, repository, tmp_path / "scratch")

    assert len(problems) == 2
    assert problems[0].startswith("model seed has no bytes in the repository: model 'seed' not found")
    assert problems[1] == (
        f"model m0: repository has {size} bytes sha256 {digest}, "
        f"record says {size} bytes sha256 {digest[::-1]}"
    )


def test_a_process_of_the_run_left_running_is_reported_and_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    marker = uuid.uuid4().hex
    env = {**os.environ, "CHAOS_RUN_ID": marker}
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env=env)
    monkeypatch.setattr(invariants, "LEFTOVER_GRACE", 0.5)

    problems = invariants.leftover_processes(marker)

    assert len(problems) == 1 and problems[0].startswith(f"pid {sleeper.pid} still running: ")
    assert sleeper.wait(10) == -9


def test_the_schedule_is_a_function_of_its_seed_and_has_every_kind() -> None:
    clients, combiners = ["client-0", "client-1", "client-2", "client-3"], ["combiner-0", "combiner-1"]

    schedule = make_schedule(9, 10, 5, clients, combiners)

    assert schedule == make_schedule(9, 10, 5, clients, combiners)
    assert schedule != make_schedule(10, 10, 5, clients, combiners)
    assert {f.kind for f in schedule} == set(FaultKind)
    keys = [f.after_rounds for f in schedule]
    assert keys == sorted(keys) and len(set(keys)) == 5 and min(keys) >= 1 and max(keys) <= 8
    only = make_schedule(9, 10, 5, clients, combiners, [FaultKind.PAUSE_CLIENT])
    assert {f.kind for f in only} == {FaultKind.PAUSE_CLIENT}
    assert all(f.target in clients for f in only)
    assert np.isfinite([f.delay + f.downtime for f in schedule]).all()
