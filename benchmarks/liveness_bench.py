"""How fast a federation notices a hung or killed client, with the default settings (ARCHITECTURE §8).

Run with ``.venv/bin/python benchmarks/liveness_bench.py [--repeat N]``. Starts `scaleout api`, one
`scaleout combiner` and two `scaleout client start` processes on loopback (tests/e2e/federation.py,
SQLite + files, no keepalive or deadline flags: the defaults are measured). Each repetition runs a
one-round session with min_clients 1 in which client-1 blocks in its train entry point, then:

- hang: SIGSTOP client-1. "noticed" is the time to the combiner's log line closing its task stream;
  "round end" the time to the round's finished_at (the commit with client-0's update alone).
- kill: SIGKILL client-1; the same two times.

A round that waited for its timeout would show ~round_timeout (``--round-timeout``, 600 s). Prints
one line per repetition and the medians. Run with another venv's python to measure that install.
"""

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: tests.e2e importable

from tests.e2e.federation import Federation, federation, wait_until
from tests.e2e.test_federation import ENV, seeded

LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"


def stream_closed_at(fed: Federation, client: str, after: float) -> float:
    """Unix time of the combiner's first 'task stream closed' line for ``client`` after ``after``."""

    def find() -> float | None:
        for line in fed.processes["combiner"].log().splitlines():
            if line.endswith(f"client {client} task stream closed"):
                stamp = datetime.strptime(line[:23], LOG_TIME).timestamp()
                if stamp >= after - 0.01:
                    return stamp
        return None

    return wait_until(find, 120, f"the combiner to close the stream of {client}")


def measure(fed: Federation, fault: int, iteration: int, round_timeout: float) -> tuple[float, float]:
    """(noticed, round end) seconds after ``fault`` hits the held client of a fresh session."""
    gate = fed.root / f"gate-{iteration}"
    name = f"held-{iteration}"
    held = fed.start_client(name, extra_env={"E2E_GATE": str(gate), "E2E_GATE_ROUND": "0"})
    fed.wait_for_clients(2)
    session_id = fed.api.start_session(rounds=1, validate=False, min_clients=1, round_timeout=round_timeout)
    wait_until(lambda: Path(f"{gate}.started").exists(), 60, "the held client to start training")
    hit = time.time()
    os.kill(held.popen.pid, fault)
    session = fed.api.wait_for_session(session_id, round_timeout + 100)
    assert session["status"] == "Finished", session
    noticed = stream_closed_at(fed, name, hit) - hit
    (round_,) = fed.api.get_rounds(session_id=session_id)["result"]
    ended = datetime.fromisoformat(round_["finished_at"]).timestamp() - hit
    held.kill()  # SIGCONT is not needed: SIGKILL ends a stopped process too
    del fed.processes[name]
    return noticed, ended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--round-timeout", type=float, default=600.0, help="of each session's round")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        federation(Path(tmp), f"sqlite:///{tmp}/statestore.db", f"file://{tmp}/models", ENV) as fed,
    ):
        seeded(fed)
        fed.start_combiner()
        fed.start_client("client-0")
        results: dict[str, list[tuple[float, float]]] = {"hang (SIGSTOP)": [], "kill (SIGKILL)": []}
        iteration = 0
        for _ in range(args.repeat):
            for (label, runs), fault in zip(results.items(), (signal.SIGSTOP, signal.SIGKILL), strict=True):
                iteration += 1
                noticed, ended = measure(fed, fault, iteration, args.round_timeout)
                runs.append((noticed, ended))
                print(f"{label}: noticed after {noticed:.1f} s, round ended after {ended:.1f} s", flush=True)
        for label, runs in results.items():
            noticed = statistics.median(n for n, _ in runs)
            ended = statistics.median(e for _, e in runs)
            print(f"median {label}: noticed {noticed:.1f} s, round end {ended:.1f} s ({len(runs)} runs)")


if __name__ == "__main__":
    main()
