"""The invariants a chaos run must keep, each checked against the stored records and bytes.

Every check returns a list of violations (empty when it holds), so that a run reports all of them, not
only the first one.
"""

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from scaleout import APIClient
from scaleout.store.repository import ModelRepository
from tests.chaos.package import SEED, ClientSpec, load, round_shift

ATOL = 1e-6
LEFTOVER_GRACE = 10.0  # seconds an orphaned entry point may take to finish its 1 s of training and exit


@dataclass
class Records:
    """What the statestore holds for the session, read once through the API."""

    session: dict[str, Any]
    rounds: list[dict[str, Any]]  # by index, then creation
    models: list[dict[str, Any]]  # the session's committed models
    seed_model: dict[str, Any]
    trail: list[str]  # model ids from the seed to the last finished round's model

    @property
    def finished(self) -> list[dict[str, Any]]:
        return [r for r in self.rounds if r["status"] == "Finished"]


def read_records(api: APIClient, session_id: str, seed_model_id: str) -> Records:
    rounds = api.get_rounds(session_id=session_id, sort_key="index")["result"]
    last = next((r["model_id"] for r in reversed(rounds) if r["status"] == "Finished"), None)
    return Records(
        session=api.get_session(session_id),
        rounds=rounds,
        models=api.get_models(session_id=session_id)["result"],
        seed_model=api.get_model(seed_model_id),
        trail=[m["id"] for m in api.get_model_trail(last)] if last else [seed_model_id],
    )


def session_finished(records: Records, rounds: int) -> list[str]:
    session = records.session
    if session["status"] != "Finished":
        return [
            f"session is {session['status']} (error: {session.get('error')!r}) "
            f"after {session['rounds_done']} rounds"
        ]
    if session["rounds_done"] != rounds:
        return [f"session finished with rounds_done={session['rounds_done']}, expected {rounds}"]
    return []


def one_model_per_round(records: Records, rounds: int) -> list[str]:
    """Finished rounds are 0..rounds-1 once each; the trail is seed -> their models, nothing else."""
    problems = []
    indices = [r["index"] for r in records.finished]
    if indices != list(range(len(indices))):
        problems.append(f"finished round indices are {indices}, expected 0..{len(indices) - 1} once each")
    if records.session["status"] == "Finished" and len(indices) != rounds:
        problems.append(f"{len(indices)} rounds finished, expected {rounds}")
    committed = [r["model_id"] for r in records.finished]
    extra = sorted({m["id"] for m in records.models} - set(committed))
    if extra:
        problems.append(f"models committed in the session by no finished round: {extra}")
    if Counter(committed)[None] or len(set(committed)) != len(committed):
        problems.append(f"finished rounds do not name one distinct model each: {committed}")
    parent = records.seed_model["id"]
    for round_ in records.finished:
        if round_["parent_model_id"] != parent:
            problems.append(
                f"round {round_['index']} ({round_['id']}) trained on {round_['parent_model_id']}, "
                f"expected the previous commit {parent}"
            )
        parent = round_["model_id"]
    expected = [records.seed_model["id"], *committed]
    if records.trail != expected:
        problems.append(
            f"model trail is {records.trail}, expected the seed then one model per round {expected}"
        )
    return problems


def bytes_and_checksums(records: Records, repository: ModelRepository, scratch: Path) -> list[str]:
    """Every committed model (and the seed) is in the repository with the size and sha256 recorded."""
    problems = []
    scratch.mkdir(parents=True, exist_ok=True)
    for model in [records.seed_model, *records.models]:
        path = scratch / f"{model['id']}.npz"
        try:
            size = repository.get_model_to_file(model["id"], path)
        except Exception as error:  # NotFound or a storage error: reported with the model id
            problems.append(f"model {model['id']} has no bytes in the repository: {error}")
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if (size, digest) != (model["size"], model["sha256"]):
            problems.append(
                f"model {model['id']}: repository has {size} bytes sha256 {digest}, record says "
                f"{model['size']} bytes sha256 {model['sha256']}"
            )
    return problems


def averaged_clients(round_: dict[str, Any]) -> dict[str, int]:
    """client -> num_examples of the updates in the round's model: those of combiners that returned one."""
    contributing = {c["combiner_id"] for c in round_["combiners"] if c.get("model_id") and not c.get("error")}
    return {c["client_id"]: c["num_examples"] for c in round_["clients"] if c["combiner_id"] in contributing}


def round_records_consistent(records: Records, specs: dict[str, ClientSpec]) -> list[str]:
    """Each finished round's accepted updates are known clients, once each, with their own num_examples;
    each is in the model (its combiner's result was reduced) and each combiner's total adds up to them."""
    problems = []
    for round_ in records.finished:
        where = f"round {round_['index']} ({round_['id']})"
        clients = [c["client_id"] for c in round_["clients"]]
        if not clients:
            problems.append(f"{where} finished with no accepted update")
        duplicates = [c for c, n in Counter(clients).items() if n > 1]
        if duplicates:
            problems.append(f"{where} accepted more than one update from {duplicates}")
        for client in round_["clients"]:
            spec = specs.get(client["client_id"])
            if spec is None:
                problems.append(f"{where} accepted an update from unknown client {client['client_id']}")
            elif client["num_examples"] != spec.n:
                problems.append(
                    f"{where}: {spec.name} reported num_examples={client['num_examples']}, it sends {spec.n}"
                )
        listed = {c["client_id"]: c["num_examples"] for c in round_["clients"]}
        for combiner in round_["combiners"]:
            name = combiner["combiner_id"]
            mine = {c["client_id"] for c in round_["clients"] if c["combiner_id"] == name}
            if combiner.get("error") or not combiner.get("model_id"):
                if mine:
                    problems.append(
                        f"{where} lists {sorted(mine)} as accepted, but their combiner {name} failed "
                        f"({combiner.get('error')!r}): their updates are not in the committed model"
                    )
            elif (total := sum(listed[c] for c in mine)) != combiner["num_examples"]:
                problems.append(
                    f"{where}: combiner {name} reduced {combiner['num_examples']} examples, "
                    f"its accepted clients {sorted(mine)} sum to {total}"
                )
    return problems


def exact_values(records: Records, specs: dict[str, ClientSpec], scratch: Path) -> list[str]:
    """Every committed model equals seed + the sum of its rounds' exact shifts (no stale update averaged).

    The shift of a round comes from its record's accepted clients and num_examples, of the combiners whose
    results were reduced (cross-checked by round_records_consistent); a stale update, trained on an older
    model, makes the value too low.
    """
    problems = []
    shift = 0.0
    for round_ in records.finished:
        accepted = {c: n for c, n in averaged_clients(round_).items() if c in specs}
        if not accepted:
            continue
        shift += round_shift(accepted, specs)
        path = scratch / f"{round_['model_id']}.npz"
        if not path.exists():
            continue  # reported by bytes_and_checksums
        model = load(path)
        errors = [float(np.max(np.abs(a - (s + shift)))) for a, s in zip(model, SEED, strict=True)]
        if max(errors) > ATOL:
            offset = float(np.mean(model[0] - SEED[0]))
            problems.append(
                f"round {round_['index']} model {round_['model_id']} is seed + {offset:.6f}, expected seed + "
                f"{shift:.6f} from the accepted updates {accepted} (max error {max(errors):.3g})"
            )
            break  # later rounds inherit the difference
    return problems


def leftover_processes(marker: str) -> list[str]:
    """Processes of this run still alive (found by the marker in their environment), killed after reporting.

    An entry point orphaned by a kill -9 of its client is allowed LEFTOVER_GRACE seconds to end.
    """
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if process.environ().get("CHAOS_RUN_ID") == marker:
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    _, alive = psutil.wait_procs(found, timeout=LEFTOVER_GRACE)
    problems = [f"pid {p.pid} still running: {' '.join(p.info['cmdline'] or [])}" for p in alive]
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    return problems


def check(name: str, results: dict[str, list[str]], function: Callable[[], list[str]]) -> None:
    """Run one check into results[name]; an exception is a violation too, named with its message."""
    try:
        results[name] = function()
    except Exception as error:
        results[name] = [f"could not be checked: {type(error).__name__}: {error}"]
