"""Round latency, throughput and memory of a real federation on this machine (ARCHITECTURE §5 targets).

Run with ``make bench`` (or ``.venv/bin/python benchmarks/round_bench.py``). Starts `scaleout api`,
one `scaleout combiner` and K `scaleout client start` processes on loopback with the end-to-end
harness (tests/e2e/federation.py), on SQLite + file stores, and runs one session per configuration:
model sizes 1 MB and 100 MB (float32), K = 4 and 16 clients, validate=False. The train entry point
returns ``input + 1`` at once with a fixed num_examples, so a round's time is the system's own.

Per configuration it prints, from the Round records of the session (medians over its rounds):
- round: started_at to finished_at (the model committed to the trail);
- last→commit: the last update's arrival at the combiner (ClientRoundResult.received_at) to the commit;
- MB/s: model bytes moved per round (K downloads + K uploads) over the round time;
- entry: the slowest client's train entry point, spawn to exit, as the client's dispatcher timed it
  (its log line "train entry point of task ... ran in ... s"), and overhead = round - entry: what
  the system adds beyond the entry points;
- peak RSS (VmHWM) of the combiner and API processes during that session (reset before it).
Every session's final model is checked against the seed plus the number of rounds (FedAvg exact;
median and Krum of identical updates are that update), or, for a server optimizer (``--aggregator
fedadam``), against its trajectory with Delta = 1 every round.
The whole run is bounded by --deadline seconds; processes are stopped on any exit.
"""

import argparse
import contextlib
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

# Run as a script, so the repository root (for tests.e2e) is not on sys.path by default.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaleout.aggregation.strategies import server_optimizer
from scaleoututil.helpers.helpers import get_helper
from tests.e2e.federation import Federation, Process, federation, make_package

MB = 1_000_000
DEADLINE = 570.0  # default seconds for the whole benchmark; `make bench` must end by itself
NUM_EXAMPLES = 10
ENTRY_POINT_LINE = re.compile(r"train entry point of task \w+ \(round (\w+)\) ran in ([0-9.]+) s")

# train: input + 1, as fast as a Python entry point can (numpyhelper load and save).
TRAIN = f"""
import sys
from scaleoututil.helpers.helpers import get_helper, save_metadata

helper = get_helper("numpyhelper")
weights = helper.load(sys.argv[1])
save_metadata({{"num_examples": {NUM_EXAMPLES}}}, sys.argv[2])
helper.save([w + 1 for w in weights], sys.argv[2])
"""


@dataclass(frozen=True)
class Config:
    size_mb: int
    clients: int
    rounds: int
    aggregator: str = "fedavg"


@dataclass(frozen=True)
class Row:
    config: Config
    round_s: float
    last_to_commit_s: float
    mb_per_s: float
    entry_s: float
    overhead_s: float
    train_s: float
    combiner_rss_mb: float
    api_rss_mb: float


def seed_arrays(size_mb: int) -> list[np.ndarray]:
    """float32 arrays of size_mb * 1e6 bytes in total: two matrices and a vector (40%, 40%, 20%)."""
    elements = size_mb * MB // 4
    rng = np.random.default_rng(size_mb)
    rows = 500 * size_mb
    cols = (elements * 2 // 5) // rows
    vector = elements - 2 * rows * cols
    return [
        rng.standard_normal((rows, cols), dtype=np.float32),
        rng.standard_normal((rows, cols), dtype=np.float32),
        rng.standard_normal(vector, dtype=np.float32),
    ]


def reset_peak_rss(process: Process) -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    Path(f"/proc/{process.popen.pid}/clear_refs").write_text("5")


def peak_rss_mb(process: Process) -> float:
    for line in Path(f"/proc/{process.popen.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / MB
    raise RuntimeError(f"no VmHWM in /proc/{process.popen.pid}/status")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def run_config(fed: Federation, config: Config, seed_id: str, seed: list[np.ndarray]) -> Row:
    combiner, api = fed.processes["combiner"], fed.processes["api"]
    for process in (combiner, api):
        reset_peak_rss(process)
    session_id = fed.api.start_session(
        name=f"bench-{config.size_mb}MB-K{config.clients}-{config.aggregator}",
        aggregator=config.aggregator,
        # Krum tolerates the most Byzantine clients K allows (K >= 2f + 3)
        aggregator_kwargs={"f": (config.clients - 3) // 2} if config.aggregator == "krum" else {},
        rounds=config.rounds,
        round_timeout=120,
        min_clients=config.clients,
        requested_clients=config.clients,
        validate=False,
        model_id=seed_id,
    )
    session = fed.api.wait_for_session(session_id, timeout=900)  # a loaded machine: K=16 at 100 MB is slow
    if session["status"] != "Finished":
        raise RuntimeError(f"session {session_id} ended {session['status']}: {session.get('error')}")
    rss = peak_rss_mb(combiner), peak_rss_mb(api)
    rounds = fed.api.get_rounds(session_id=session_id, sort_key="index")["result"]
    check_final_model(fed, rounds[-1]["model_id"], seed, expected_shift(config))
    return summarize(config, rounds, entry_point_seconds(fed), rss)


def entry_point_seconds(fed: Federation) -> dict[str, list[float]]:
    """Round id -> run times of its train entry points, from the clients' logs."""
    seconds: dict[str, list[float]] = {}
    for name, process in fed.processes.items():
        if name.startswith("client-"):
            for round_id, value in ENTRY_POINT_LINE.findall(process.log()):
                seconds.setdefault(round_id, []).append(float(value))
    return seconds


def summarize(
    config: Config,
    rounds: list[dict[str, Any]],
    entry_seconds: dict[str, list[float]],
    rss: tuple[float, float],
) -> Row:
    round_s, last_s, entry_s, overhead_s, train_s = [], [], [], [], []
    for record in rounds:
        clients = record["clients"]
        if len(clients) != config.clients:
            raise RuntimeError(f"round {record['index']}: {len(clients)} updates, expected {config.clients}")
        seconds = (at(record["finished_at"]) - at(record["started_at"])).total_seconds()
        last = max(at(c["received_at"]) for c in clients)
        slowest_entry = max(entry_seconds[record["id"]])
        round_s.append(seconds)
        last_s.append((at(record["finished_at"]) - last).total_seconds())
        entry_s.append(slowest_entry)
        overhead_s.append(seconds - slowest_entry)
        train_s.append(max(c["train_seconds"] for c in clients))
    median_round = statistics.median(round_s)
    moved_mb = 2 * config.clients * config.size_mb
    return Row(
        config,
        median_round,
        statistics.median(last_s),
        moved_mb / median_round,
        statistics.median(entry_s),
        statistics.median(overhead_s),
        statistics.median(train_s),
        *rss,
    )


def expected_shift(config: Config) -> list[float]:
    """The final model minus the seed, as additions in float32: every client adds 1 each round."""
    optimizer = server_optimizer(config.aggregator, {})
    if optimizer is None:
        return [1.0] * config.rounds
    state = {name: np.array([optimizer.initial(name)]) for name in optimizer.states}
    steps = []
    for _ in range(config.rounds):
        for name in optimizer.states:
            optimizer.update(name, state[name], np.array([1.0]))  # in place
        steps.append(float(optimizer.step(state)[0]))
    return steps


def check_final_model(fed: Federation, model_id: str, seed: list[np.ndarray], steps: list[float]) -> None:
    """The seed plus each round's step, in float32 as the rounds add them."""
    expected = [a.copy() for a in seed]
    for step in steps:
        expected = [a + np.float32(step) for a in expected]
    path = fed.api.download_model(model_id, fed.root / "final.npz")
    try:
        model = get_helper("numpyhelper").load(str(path))
        for got, want in zip(model, expected, strict=True):
            if got.dtype != want.dtype or got.shape != want.shape:
                raise RuntimeError(f"final model {model_id}: {got.dtype}{got.shape}, want {want.dtype}")
            error = float(np.max(np.abs(got.astype(np.float64) - want)))
            if error > 1e-5:
                raise RuntimeError(f"final model {model_id} is off the expected model by {error:g}")
    finally:
        path.unlink()


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'model':>7} {'K':>3} {'aggregator':>12} {'rounds':>6} {'round s':>8} {'last→commit s':>14} "
        f"{'MB/s':>7} "
        f"{'entry s':>8} {'overhead s':>10} {'train s':>8} {'combiner RSS MB':>16} {'api RSS MB':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        c = r.config
        print(
            f"{c.size_mb:>5}MB {c.clients:>3} {c.aggregator:>12} {c.rounds:>6} {r.round_s:>8.3f} "
            f"{r.last_to_commit_s:>14.3f} "
            f"{r.mb_per_s:>7.0f} {r.entry_s:>8.3f} {r.overhead_s:>10.3f} {r.train_s:>8.3f} "
            f"{r.combiner_rss_mb:>16.0f} {r.api_rss_mb:>11.0f}"
        )
    print(
        "medians over each session's rounds; entry = slowest client's train entry point (spawn to exit),\n"
        "overhead = round - entry, train = slowest task published → update received at the "
        "combiner;\nRSS = VmHWM during the session. Targets (ARCHITECTURE §5): round ≤ 0.3 s at 1 MB "
        "(overhead ≤ 0.05 s),\n≤ 3 s at 100 MB, combiner peak RSS ≤ 300 MB at 100 MB."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100], help="model sizes in MB")
    parser.add_argument("--clients", type=int, nargs="+", default=[4, 16], help="values of K")
    parser.add_argument(
        "--aggregator", nargs="+", default=["fedavg"], help="aggregators to run each configuration with"
    )
    parser.add_argument("--deadline", type=float, default=DEADLINE, help="seconds for the whole run")
    parser.add_argument("--work-dir", type=Path, help="keep stores and process logs here (a new folder)")
    args = parser.parse_args()

    def out_of_time(signum: int, frame: object) -> None:
        raise TimeoutError(f"round_bench did not finish within {args.deadline:g} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(int(args.deadline))
    started = time.monotonic()
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        if args.work_dir is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scaleout-round-bench-")))
        else:
            root = args.work_dir.resolve()
            root.mkdir(parents=True)
        with federation(root, f"sqlite:///{root}/statestore.db", f"file://{root}/models") as fed:
            fed.api.set_active_package(make_package(root, TRAIN))
            fed.start_combiner("combiner")
            seeds = {size: seed_arrays(size) for size in args.sizes}
            seed_ids = {
                size: fed.api.set_active_model(
                    get_helper("numpyhelper").save(seed, str(root / f"seed-{size}MB.npz"))
                )
                for size, seed in seeds.items()
            }
            # K = 4 runs with 4 clients connected, then 12 more connect for K = 16.
            for clients in sorted(args.clients):
                for index in range(len(fed.processes) - 2, clients):  # minus the API and the combiner
                    fed.start_client(f"client-{index}")
                fed.wait_for_clients(clients)
                for size in args.sizes:
                    for aggregator in args.aggregator:
                        config = Config(size, clients, rounds=10 if size <= 10 else 3, aggregator=aggregator)
                        rows.append(run_config(fed, config, seed_ids[size], seeds[size]))
                        print(
                            f"  done: {size} MB, K={clients}, {aggregator} "
                            f"({time.monotonic() - started:.0f} s)",
                            flush=True,
                        )
    signal.alarm(0)
    rows.sort(key=lambda r: (r.config.size_mb, r.config.clients, args.aggregator.index(r.config.aggregator)))
    print_table(rows)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"total {time.monotonic() - started:.0f} s on {os.cpu_count()} cores; load average now {load}")


if __name__ == "__main__":
    main()
