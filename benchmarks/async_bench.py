"""Asynchronous (FedBuff) against synchronous sessions on a swarm with slow clients: steps per minute.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/async_bench.py``). Starts `scaleout api` and
one `scaleout combiner` on SQLite + files with the end-to-end harness, a 1 MB seed model, and the swarm
of benchmarks/swarm.py: ``--clients`` real edge clients whose train step returns ``input + 1`` after
``--train-seconds``, ``--slow-fraction`` of them ``--slow-factor`` times slower. Then, at equal updates per
server step (K = ``--buffer``), two sessions on the same clients:

- sync: ``--rounds`` rounds that each select K clients at random and wait for all K of them;
- async: clients kept training on the latest version, ``--concurrency`` at once; every K updates make a
  version, each weighted by its staleness (``polynomial``, 1/sqrt(1 + tau)); it runs for as long as the
  sync session took (``max_duration``), or ``--versions`` versions.

It prints per mode the server steps committed (rounds or versions), the session's wall time (start to
end, as the API reports it ended), steps per minute, the median staleness of the folded updates and the
updates per step, then the ratio of async versions per minute to sync rounds per minute; for sync,
how many rounds selected a slow client against the odds (the sync rate swings with that draw). Each
model is checked: the sync trail ends at seed + rounds exactly; every async update's delta is +1, so
each version adds server_lr * sum(n * s) / sum(n) over its folded updates (n examples, staleness
weight s, from the version's record), up to float32 rounding of update - base.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Run as a script, so the repository root (for benchmarks, tests.e2e) is not on sys.path by default.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.swarm import Pace, check_model, is_slow, seed_model, start_swarm, write_package
from scaleoututil.helpers.helpers import get_helper
from tests.e2e.federation import Federation, federation, wait_until

ASYNC_TOLERANCE = 1e-3  # float32 rounding of (x + 1) - x summed over versions
SERVER_LR = 1.0


@dataclass(frozen=True)
class Row:
    mode: str
    steps: int
    wall_s: float
    staleness: list[int]
    updates: list[int]
    status: str
    check: str

    @property
    def per_minute(self) -> float:
        return self.steps / self.wall_s * 60 if self.wall_s > 0 else float("nan")


def run_session(fed: Federation, timeout: float, **config: Any) -> tuple[list[dict[str, Any]], float, str]:
    """Start a session, wait for its end; its committed step records, wall seconds and final status."""
    started = time.monotonic()
    session_id = fed.api.start_session(**config)
    session = fed.api.wait_for_session(session_id, timeout=timeout)
    wall = time.monotonic() - started
    records = fed.api.get_rounds(session_id=session_id, sort_key="index")["result"]
    committed = [r for r in records if r.get("status") == "Finished" and r.get("model_id")]
    status = session["status"] + (f" ({session['error']})" if session.get("error") else "")
    return committed, wall, status


def staleness_of(records: list[dict[str, Any]]) -> list[int]:
    """Every folded update's staleness (a sync round's updates are 0 versions stale)."""
    return [c.get("staleness") or 0 for r in records for c in r["clients"]]


def version_step(record: dict[str, Any], server_lr: float) -> float:
    """What a version adds to every weight when each folded delta is +1: server_lr times the buffer's
    sum(n * s) / sum(n), from the update's num_examples n and staleness weight s in its record."""
    clients = record["clients"]
    total = sum(c["num_examples"] for c in clients)
    return server_lr * sum(c["num_examples"] * c["staleness_weight"] for c in clients) / total


def check_async(
    fed: Federation, records: list[dict[str, Any]], seed: list[np.ndarray], before: int, server_lr: float
) -> str:
    """How far the last version is from the seed plus ``before`` sync rounds plus every version's step."""
    added = before + sum(version_step(r, server_lr) for r in records)
    path = fed.api.download_model(records[-1]["model_id"], fed.root / "check-async.npz")
    try:
        model = get_helper("numpyhelper").load(str(path))
    finally:
        path.unlink()
    error = max(
        float(np.max(np.abs(got.astype(np.float64) - (start + added))))
        for got, start in zip(model, seed, strict=True)
    )
    verdict = "" if error <= ASYNC_TOLERANCE else f" (NOT within {ASYNC_TOLERANCE:g})"
    return f"seed + {added:.4f} (the records' staleness weights) within {error:.1e}{verdict}"


def slow_rounds(records: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """How many rounds selected a slow client, against the odds of K random clients out of N: the sync
    rate swings with this draw, so a run says how lucky it was."""
    slow = sum(
        any(is_slow(int(c["client_id"].removeprefix("swarm-")), args.slow_fraction) for c in r["clients"])
        for r in records
    )
    fast = args.clients - sum(is_slow(i, args.slow_fraction) for i in range(args.clients))
    expected = 1 - math.comb(fast, args.buffer) / math.comb(args.clients, args.buffer)
    return f"{slow} of {len(records)} rounds selected a slow client (expected {expected:.1%})"


def sync_row(fed: Federation, args: argparse.Namespace, seed: list[np.ndarray], before: int) -> Row:
    records, wall, status = run_session(
        fed,
        timeout=args.rounds * (args.round_timeout + 30),
        name="bench-sync",
        rounds=args.rounds,
        round_timeout=args.round_timeout,
        min_clients=args.buffer,
        requested_clients=args.buffer,
        validate=False,
    )
    check = "-"
    if records:
        check_model(fed, records[-1]["model_id"], seed, before + len(records))
        check = f"seed + {before + len(records)} exact; {slow_rounds(records, args)}"
    return Row(
        "sync", len(records), wall, staleness_of(records), [len(r["clients"]) for r in records], status, check
    )


def async_row(
    fed: Federation, args: argparse.Namespace, seed: list[np.ndarray], before: int, duration: float
) -> Row:
    stop = {"max_versions": args.versions} if args.versions else {"max_duration": round(duration, 1)}
    records, wall, status = run_session(
        fed,
        timeout=(duration if not args.versions else args.versions * args.round_timeout) + 120,
        name="bench-async",
        mode="async",
        buffer_size=args.buffer,
        max_concurrency=args.concurrency,
        staleness="polynomial",
        server_lr=SERVER_LR,
        min_clients=1,
        validate=False,
        **stop,
    )
    check = check_async(fed, records, seed, before, SERVER_LR) if records else "-"
    return Row(
        "async",
        len(records),
        wall,
        staleness_of(records),
        [len(r["clients"]) for r in records],
        status,
        check,
    )


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    header = (
        f"{'mode':<6} {'steps':>6} {'wall s':>7} {'steps/min':>10} {'median staleness':>17} "
        f"{'updates/step':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        median = statistics.median(r.staleness) if r.staleness else float("nan")
        mean_updates = statistics.mean(r.updates) if r.updates else float("nan")
        print(
            f"{r.mode:<6} {r.steps:>6} {r.wall_s:>7.1f} {r.per_minute:>10.2f} {median:>17g} "
            f"{mean_updates:>13.1f}"
        )
    for r in rows:
        print(f"{r.mode}: {r.status}; model {r.check}")
    by_mode = {r.mode: r for r in rows}
    if {"sync", "async"} <= by_mode.keys() and by_mode["sync"].per_minute > 0:
        ratio = by_mode["async"].per_minute / by_mode["sync"].per_minute
        print(f"async/sync steps per minute: {ratio:.1f}x (target >= 5x)")
    print(
        f"{args.clients} swarm clients, {args.slow_fraction:.0%} of them {args.slow_factor:g}x slower (train "
        f"{args.train_seconds:g} s, slow {args.train_seconds * args.slow_factor:g} s), {args.size} MB model, "
        f"K = {args.buffer} updates per step, async max_concurrency {args.concurrency}, polynomial "
        "staleness.\n"
        f"Load average now {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores."
    )


def bench(args: argparse.Namespace) -> list[Row]:
    pace = Pace(args.train_seconds, args.slow_fraction, args.slow_factor)
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scaleout-async-bench-")))
        fed = stack.enter_context(
            federation(root, f"sqlite:///{root}/statestore.db", f"file://{root}/models")
        )
        fed.start_combiner("combiner")
        seed = seed_model(args.size)
        fed.api.set_active_model(get_helper("numpyhelper").save(seed, str(root / "seed.npz")))
        start_swarm(
            fed, args.clients, args.processes, package=write_package(root / "swarm-package"), pace=pace
        )
        wait_until(
            lambda: fed.api.count_entities("clients", status="online") >= args.clients,
            600,
            f"{args.clients} clients online",
            interval=1.0,
        )
        modes = ["sync", "async"] if args.mode == "both" else [args.mode]
        steps = 0
        for mode in modes:
            if mode == "sync":
                rows.append(sync_row(fed, args, seed, steps))
            else:
                duration = rows[0].wall_s if rows else args.duration
                rows.append(async_row(fed, args, seed, steps, duration))
            steps += rows[-1].steps
            print_table(rows[-1:], args)  # as it comes
            sys.stdout.flush()
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2, help="swarm processes")
    parser.add_argument("--slow-fraction", type=float, default=0.1)
    parser.add_argument("--slow-factor", type=float, default=10.0)
    parser.add_argument("--train-seconds", type=float, default=2.0, help="a fast client's train step")
    parser.add_argument("--size", type=int, default=1, help="model size in MB")
    parser.add_argument("--buffer", type=int, default=10, help="K: updates per server step in both modes")
    parser.add_argument("--concurrency", type=int, default=20, help="async: clients training at once")
    parser.add_argument("--rounds", type=int, default=20, help="sync rounds (their rate depends on the draw)")
    parser.add_argument("--round-timeout", type=float, default=120.0)
    parser.add_argument(
        "--versions", type=int, default=None, help="async: versions (default: sync's wall time)"
    )
    parser.add_argument("--duration", type=float, default=120.0, help="async seconds when sync does not run")
    parser.add_argument("--mode", choices=["both", "sync", "async"], default="both")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    rows = bench(args)
    print()
    print_table(rows, args)


if __name__ == "__main__":
    main()
