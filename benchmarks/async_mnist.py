"""Accuracy against wall time on mnist-numpy, synchronous rounds against asynchronous (FedBuff) versions.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/async_mnist.py``). Starts `scaleout api`, one
`scaleout combiner` and ``--clients`` real `scaleout client start` processes on SQLite + files with the
end-to-end harness; client i trains on partition i of the example's data. The compute package is a copy
of examples/mnist-numpy/client, its code unmodified, plus one file: ``slow_train.py``, the train entry
point of the copy, sleeps ``ASYNC_BENCH_TRAIN_SECONDS`` (set per client process, inherited by its entry
points as any environment variable is) and then calls the example's own ``train``. The pace is thus
the device's, outside the example's code: every client trains ``--train-seconds`` longer, the
``--slow-fraction`` picked by swarm.is_slow ``--slow-factor`` times that.

Two sessions from the same seed, at equal updates per server step (K = every client):

- sync: ``--rounds`` rounds of all clients, each waiting for the slowest;
- async: the same clients kept busy, every K updates a version (polynomial staleness), for as long as
  the sync session took.

Every committed model (round or version) is then scored on one test set, the union of every partition's
test split, by the example's own ``loss_and_accuracy``: the same yardstick for both modes, computed
here rather than by client validations so that measuring costs the clients no time. Writes
``OUT.csv`` (mode, step, seconds since the session started, test accuracy, median staleness of the
step's updates) and ``OUT.svg`` (accuracy against wall time, one line per mode), and prints the
accuracy each mode reached and when.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

# Run as a script, so the repository root (for benchmarks, tests.e2e) is not on sys.path by default.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.svg_plot import line_chart
from benchmarks.swarm import Pace
from tests.e2e.federation import SCALEOUT, Federation, federation

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist-numpy" / "client"
RESULTS = Path(__file__).resolve().parent / "results" / "async_mnist"
PACE_VARIABLE = "ASYNC_BENCH_TRAIN_SECONDS"
SLOW_TRAIN = f'''"""The benchmark's train entry point: a device's training time, then the example's train."""

import os
import sys
import time

from train import train

time.sleep(float(os.environ.get("{PACE_VARIABLE}", "0")))
train(sys.argv[1], sys.argv[2])
'''
TRAIN_COMMAND = "command: python train.py"


@dataclass(frozen=True)
class Point:
    mode: str
    step: int
    seconds: float
    accuracy: float
    staleness: float


def paced_package(root: Path) -> Path:
    """A copy of the example's package whose train entry point is slow_train.py."""
    package = root / "package"
    shutil.copytree(EXAMPLE, package, ignore=shutil.ignore_patterns("data", "*.npz", "__pycache__"))
    (package / "slow_train.py").write_text(SLOW_TRAIN)
    project = package / "scaleout.yaml"
    text = project.read_text()
    if TRAIN_COMMAND not in text:
        raise RuntimeError(f"{EXAMPLE}/scaleout.yaml has no '{TRAIN_COMMAND}' to wrap; update {__file__}")
    project.write_text(text.replace(TRAIN_COMMAND, "command: python slow_train.py"))
    return package


def example_module(package: Path, name: str) -> ModuleType:
    """One of the example's modules (data, model), loaded from the package copy."""
    spec = importlib.util.spec_from_file_location(f"mnist_numpy_{name}", package / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scorer(package: Path, partitions: int) -> Callable[[Path], float]:
    """Test accuracy of a model file on the union of every partition's test split."""
    data, model = example_module(package, "data"), example_module(package, "model")
    splits = [data.make_partition(p, partitions) for p in range(partitions)]
    x = np.concatenate([s["x_test"] for s in splits])
    y = np.concatenate([s["y_test"] for s in splits])
    return lambda path: model.loss_and_accuracy(model.load_parameters(str(path)), x, y)[1]


def run_session(
    fed: Federation, timeout: float, **config: Any
) -> tuple[list[dict[str, Any]], datetime, float]:
    """Start a session and wait for it; its committed step records, start time and wall seconds."""
    started = datetime.now(UTC)
    session_id = fed.api.start_session(**config)
    session = fed.api.wait_for_session(session_id, timeout=timeout)
    wall = (datetime.now(UTC) - started).total_seconds()
    if session["status"] != "Finished":
        print(f"{config.get('mode', 'sync')} session ended {session['status']}: {session.get('error')}")
    records = fed.api.get_rounds(session_id=session_id, sort_key="index")["result"]
    return [r for r in records if r.get("status") == "Finished" and r.get("model_id")], started, wall


def points(
    fed: Federation,
    mode: str,
    records: list[dict[str, Any]],
    started: datetime,
    score: Callable[[Path], float],
) -> list[Point]:
    """The seed at 0 s, then every committed step's model, scored."""
    result = [Point(mode, 0, 0.0, round(score(fed.root / "seed.npz"), 4), 0.0)]
    for step, record in enumerate(records, start=1):
        path = fed.api.download_model(record["model_id"], fed.root / "score.npz")
        seconds = (datetime.fromisoformat(record["finished_at"]) - started).total_seconds()
        staleness = float(statistics.median([c.get("staleness") or 0 for c in record["clients"]] or [0]))
        result.append(Point(mode, step, round(seconds, 2), round(score(path), 4), staleness))
    return result


def bench(args: argparse.Namespace) -> list[Point]:
    pace = Pace(args.train_seconds, args.slow_fraction, args.slow_factor)
    result: list[Point] = []
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scaleout-async-mnist-")))
        fed = stack.enter_context(
            federation(root, f"sqlite:///{root}/statestore.db", f"file://{root}/models")
        )
        package = paced_package(root)
        subprocess.run([SCALEOUT, "run", "build", "--path", str(package), "--output", str(root)], check=True)
        fed.api.set_active_package(package)
        seed_id = fed.api.set_active_model(root / "seed.npz")
        fed.start_combiner()
        for i in range(args.clients):
            env = {PACE_VARIABLE: str(pace.seconds(i))}
            fed.start_client(f"client-{i}", partition=i, partitions=args.clients, extra_env=env)
        fed.wait_for_clients(args.clients, timeout=300)
        score = scorer(package, args.clients)
        common = {"model_id": seed_id, "validate": False, "min_clients": args.clients}
        timeout = args.rounds * (args.train_seconds * args.slow_factor + 120)
        records, started, wall = run_session(
            fed, timeout, name="mnist-sync", rounds=args.rounds, requested_clients=args.clients, **common
        )
        result += points(fed, "sync", records, started, score)
        print(f"sync: {len(records)} rounds in {wall:.1f} s")
        records, started, async_wall = run_session(
            fed,
            wall + 300,
            name="mnist-async",
            mode="async",
            buffer_size=args.clients,
            max_concurrency=args.clients,
            staleness="polynomial",
            max_duration=round(wall, 1),
            **{**common, "min_clients": 1},
        )
        result += points(fed, "async", records, started, score)
        print(f"async: {len(records)} versions in {async_wall:.1f} s")
    return result


def write_results(result: list[Point], out: Path, args: argparse.Namespace) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["mode", "step", "seconds", "test_accuracy", "median_staleness"])
        writer.writerows((p.mode, p.step, p.seconds, p.accuracy, p.staleness) for p in result)
    series = {
        f"{mode} ({'rounds' if mode == 'sync' else 'versions'})": [
            (p.seconds, p.accuracy) for p in result if p.mode == mode
        ]
        for mode in ("sync", "async")
    }
    slow = round(args.clients * args.slow_fraction)
    line_chart(
        out.with_suffix(".svg"),
        series,
        f"mnist-numpy, {args.clients} clients ({slow} of them {args.slow_factor:g}x slower): test accuracy",
        "seconds since the session started",
        "test accuracy",
    )


def summary(result: list[Point], target: float) -> None:
    for mode in ("sync", "async"):
        mine = [p for p in result if p.mode == mode and p.step > 0]
        if not mine:
            print(f"{mode}: no step committed")
            continue
        reached = next((p for p in mine if p.accuracy >= target), None)
        when = f"{reached.seconds:.0f} s (step {reached.step})" if reached else "never"
        print(
            f"{mode}: {len(mine)} steps in {mine[-1].seconds:.0f} s, final accuracy {mine[-1].accuracy:.3f}, "
            f"best {max(p.accuracy for p in mine):.3f}; reached {target:.0%} at {when}"
        )
    print(f"Load average now {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10, help="client processes, one data partition each")
    parser.add_argument("--slow-fraction", type=float, default=0.1)
    parser.add_argument("--slow-factor", type=float, default=10.0)
    parser.add_argument(
        "--train-seconds", type=float, default=3.0, help="added to a fast client's train step"
    )
    parser.add_argument("--rounds", type=int, default=6, help="sync rounds; async runs as long")
    parser.add_argument("--target", type=float, default=0.8, help="accuracy whose time to reach is printed")
    parser.add_argument("--out", type=Path, default=RESULTS, help="writes OUT.csv and OUT.svg")
    args = parser.parse_args()
    result = bench(args)
    write_results(result, args.out, args)
    summary(result, args.target)
    print(f"wrote {args.out.with_suffix('.csv')} and {args.out.with_suffix('.svg')}")


if __name__ == "__main__":
    main()
