"""A swarm of edge clients for load: N real clients in one asyncio process, and a benchmark that uses it.

Every client of the swarm is the edge client itself (``scaleout.client.edge.EdgeClient``): it asks the
API for a combiner (``/clients/add``), opens its TaskStream, sends heartbeats, downloads the model and
uploads its update through the client's own transfer code, sends ``SendModelUpdate`` with metadata and
answers validate tasks. Only the entry points differ: ``InProcessTraining`` returns ``input + 1`` with
``NUM_EXAMPLES`` examples in a thread instead of spawning a process, so the combiner, the controller
and the API are what is measured. Each client dials its own connection (a local subchannel pool), as
separate client processes would.

Two commands:

- ``swarm.py clients --api-url URL --count N --work-dir DIR --package DIR`` runs N clients until
  SIGTERM (what ``bench`` and the tests spawn, one process per ``--processes``); with
  ``--train-seconds T`` every train step takes T seconds, and ``--slow-fraction F --slow-factor X``
  makes the clients ``is_slow`` picks (F of them, spread evenly by number) take T x X;
- ``swarm.py bench --clients 100 300 1000`` starts `scaleout api` and one `scaleout combiner` (SQLite +
  files) with the end-to-end harness, then per client count: the swarm, a 3-round session on a 1 MB
  model, checked exact (seed + rounds), and prints per count the median round time, the combiner's
  peak RSS (VmHWM), its CPU while the clients are connected and idle, and the statestore writes per
  second meanwhile (counted by SQLite triggers on every table of the benchmark's own database).
  ``--rounds 0`` measures the idle swarm only (RSS is then the combiner's VmRSS while idle);
  ``--keep DIR`` works in DIR and keeps it, every process's log under DIR/logs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

# Run as a script, so the repository root (for tests.e2e) is not on sys.path by default.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scaleout.api.client import SessionTimeout
from scaleout.client.dispatcher import Dispatcher, RunResult
from scaleout.client.edge import OWN_CONNECTION, EdgeClient
from scaleout.client.settings import ClientSettings
from scaleout.errors import PackageError
from scaleoututil.helpers.helpers import get_helper, save_metadata, save_metrics
from tests.e2e.federation import Federation, Process, federation, wait_until

MB = 1_000_000
NUM_EXAMPLES = 10
# Entry points the package declares; the swarm runs them in process, but the client reads scaleout.yaml.
PACKAGE_YAML = (
    "entry_points:\n  train:\n    command: python train.py\n  validate:\n    command: python validate.py\n"
)

log = logging.getLogger("swarm")


def varied_step(index: int) -> tuple[float, int]:
    """What client ``index`` of a ``--varied`` swarm adds and how many examples it claims: the updates
    differ, so a weighted average over combiners is checked, not only an average of equal updates."""
    return float(index % 3 + 1), index % 5 + 1


def is_slow(index: int, fraction: float) -> bool:
    """Whether client ``index`` is one of the slow ones: every client where ``index * fraction`` crosses
    an integer, so clients 0..N-1 hold ``floor(N * fraction)`` slow ones spread evenly (fraction 0.1:
    swarm-9, swarm-19, ...), the same in every run and in every split of the swarm into processes."""
    return int((index + 1) * fraction) > int(index * fraction)


@dataclass(frozen=True)
class Pace:
    """How long a swarm client's train step takes: ``train_seconds``, times ``slow_factor`` for the
    ``slow_fraction`` of clients that ``is_slow`` picks."""

    train_seconds: float = 0.0
    slow_fraction: float = 0.0
    slow_factor: float = 1.0

    def seconds(self, index: int) -> float:
        slow = is_slow(index, self.slow_fraction)
        return self.train_seconds * (self.slow_factor if slow else 1.0)

    def args(self) -> list[str]:
        """The ``clients`` command's options that give this pace."""
        return [
            *("--train-seconds", str(self.train_seconds)),
            *("--slow-fraction", str(self.slow_fraction)),
            *("--slow-factor", str(self.slow_factor)),
        ]


# add -> (the last model trained in this process, a file of its trained npz): see InProcessTraining._trained.
_TRAINED: dict[float, tuple[bytes, Path]] = {}


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source`` (a client deleting its task file leaves the other links):
    writing the same 1 MB per client per round was 8 % of the swarm's CPU; a copy across file systems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


class InProcessTraining(Dispatcher):
    """The package's entry points, run in the client's thread: train writes ``input + add`` with
    ``num_examples`` after ``train_seconds`` (a device's training time), validate the mean of the first
    array. ``stop`` (a task abandoned, the client stopping) cuts the wait short, as it would kill a
    training process, and the step fails."""

    def __init__(
        self,
        package_dir: Path,
        add: float = 1.0,
        num_examples: int = NUM_EXAMPLES,
        train_seconds: float = 0.0,
    ) -> None:
        super().__init__(package_dir)
        self.add = add
        self.num_examples = num_examples
        self.train_seconds = train_seconds
        self._stopped = threading.Event()
        self._training = False

    def run(
        self,
        entry_point: str,
        args: Sequence[str | os.PathLike[str]] = (),
        extra_env: object = None,
        timeout: float | None = None,
    ) -> RunResult:
        started = time.monotonic()
        command = self.command(entry_point, args)  # the same check as a real run: declared or refused
        in_path, out_path = map(str, args)
        if entry_point == "train":
            if self.train_seconds > 0:
                self._train_time()
            save_metadata({"num_examples": self.num_examples}, out_path)
            _link_or_copy(self._trained(Path(in_path).read_bytes(), out_path), Path(out_path))
        else:
            weights = get_helper("numpyhelper").load(in_path)
            save_metrics({"mean": float(np.mean(weights[0]))}, out_path)
        return RunResult(entry_point, command, 0, time.monotonic() - started)

    def _trained(self, model: bytes, out_path: str) -> Path:
        """A file of the npz of ``model + add``, computed once per process for each model and ``add``: the
        swarm's clients all train the same global model, and loading and saving it per client was a
        third of the swarm's CPU, which this machine's 2 cores share with what the benchmark measures."""
        cached = _TRAINED.get(self.add)
        if cached is not None and cached[0] == model:
            return cached[1]
        helper = get_helper("numpyhelper")
        weights = helper.load(io.BytesIO(model))
        # A new file each time, never rewritten: clients may still be uploading links to the last one.
        trained = Path(out_path).with_name(f"trained-{uuid.uuid4().hex}.npz")
        helper.save([w + w.dtype.type(self.add) for w in weights], str(trained))
        if cached is not None:
            cached[1].unlink(missing_ok=True)  # its links live on until their clients delete them
        _TRAINED[self.add] = (model, trained)
        return trained

    def _train_time(self) -> None:
        self._stopped.clear()
        self._training = True
        try:
            if self._stopped.wait(self.train_seconds):
                raise PackageError(f"train step stopped before its {self.train_seconds:g} s were up")
        finally:
            self._training = False

    def stop(self, grace: float = 5.0) -> int:
        """End a train step's wait at once; 1 when one was waiting (a process stopped), else 0."""
        training = self._training
        self._stopped.set()
        return int(training)


def write_package(folder: Path) -> Path:
    """The compute package the swarm's clients load (its commands are never spawned)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scaleout.yaml").write_text(PACKAGE_YAML)
    return folder


async def run_clients(
    api_url: str,
    count: int,
    first: int,
    work_dir: Path,
    package: Path,
    token: str | None,
    varied: bool = False,
    pace: Pace = Pace(),
) -> None:
    """Run clients ``swarm-{first}`` .. ``swarm-{first + count - 1}`` until cancelled or one fails."""
    clients = []
    for index in range(first, first + count):
        name = f"swarm-{index}"
        settings = ClientSettings(
            api_url=api_url,
            work_dir=work_dir / name,
            name=name,
            client_id=name,
            local_package=package,
            token=token,
        )
        add, num_examples = varied_step(index) if varied else (1.0, NUM_EXAMPLES)
        training = InProcessTraining(package, add, num_examples, pace.seconds(index))
        # One connection per client, as separate processes would have.
        clients.append(EdgeClient(settings, dispatcher=training, channel_options=OWN_CONNECTION))
    runs = [asyncio.create_task(c.run(handle_signals=False), name=c.name) for c in clients]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([*runs, stopped], return_when=asyncio.FIRST_COMPLETED)
    for client in clients:
        client.stop()
    results = await asyncio.gather(*runs, return_exceptions=True)
    failures = [f"{c.name}: {r!r}" for c, r in zip(clients, results, strict=True) if isinstance(r, Exception)]
    if failures:
        raise RuntimeError(f"{len(failures)} swarm clients failed: {failures[:5]}")


def start_swarm(
    fed: Federation,
    count: int,
    processes: int,
    first: int = 0,
    package: Path | None = None,
    varied: bool = False,
    api_url: str | None = None,
    prefix: Sequence[str] = (),
    pace: Pace = Pace(),
    work_dir: Path | None = None,
) -> list[Process]:
    """Spawn ``processes`` swarm processes running ``count`` clients between them, numbered from ``first``;
    ``prefix`` runs them elsewhere (``ip netns exec NS``), reaching the API at ``api_url``; the clients'
    work folders go under ``work_dir`` (default: the federation's root)."""
    package = package or write_package(fed.root / "swarm-package")
    spawned = []
    per = -(-count // processes)
    for start in range(first, first + count, per):
        n = min(per, first + count - start)
        args = [
            "clients",
            "--api-url",
            api_url or fed.api_url,
            "--count",
            str(n),
            "--first",
            str(start),
            "--work-dir",
            str(work_dir or fed.root / "swarm"),
            "--package",
            str(package),
            *(["--varied"] if varied else []),
            *pace.args(),
        ]
        spawned.append(fed.spawn_python(f"swarm-{start}", [__file__, *args], prefix))
    return spawned


# -- the benchmark ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    clients: int
    round_s: float
    updates: str
    rss_mb: float
    idle_cpu: float
    idle_writes: float
    round_cpu: dict[str, float]  # CPU seconds per round of the combiner, the API and the swarm


def seed_model(size_mb: int) -> list[np.ndarray]:
    rng = np.random.default_rng(size_mb)
    return [rng.standard_normal(size_mb * MB // 4 - 10, dtype=np.float32), np.arange(10, dtype=np.float32)]


def check_model(fed: Federation, model_id: str, seed: list[np.ndarray], rounds: int) -> None:
    """Every client adds 1 each round, so the exact FedAvg after ``rounds`` rounds is seed + rounds."""
    path = fed.api.download_model(model_id, fed.root / f"check-{model_id}.npz")
    try:
        model = get_helper("numpyhelper").load(str(path))
    finally:
        path.unlink()
    for got, start in zip(model, seed, strict=True):
        want = start.copy()
        for _ in range(rounds):
            want = want + 1  # in the dtype the clients add in
        if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want):
            error = float(np.max(np.abs(got.astype(np.float64) - want))) if got.shape == want.shape else None
            raise AssertionError(
                f"model {model_id} is not seed + {rounds}: {got.dtype}{got.shape} vs "
                f"{want.dtype}{want.shape}, largest difference {error}"
            )


def pid_status(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024 / MB
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def counted_writes(db_path: Path) -> Iterator[sqlite3.Connection]:
    """Count every INSERT and UPDATE on every table of the statestore with triggers."""
    conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    conn.execute("CREATE TABLE IF NOT EXISTS bench_writes (n INTEGER NOT NULL)")
    conn.execute("INSERT INTO bench_writes VALUES (0)")
    for table in tables:
        for op in ("INSERT", "UPDATE"):
            conn.execute(
                f'CREATE TRIGGER IF NOT EXISTS "bench_{table}_{op}" AFTER {op} ON "{table}" '
                "BEGIN UPDATE bench_writes SET n = n + 1; END"
            )
    try:
        yield conn
    finally:
        conn.close()


def writes(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT n FROM bench_writes").fetchone()[0])


def online_count(fed: Federation) -> int:
    return fed.api.count_entities("clients", status="online")


def measure(
    fed: Federation,
    counter: sqlite3.Connection,
    clients: int,
    rounds: int,
    seed: list[np.ndarray],
    rounds_before: int,
    idle_window: float,
) -> Row:
    """Wait for ``clients`` online, measure them idle, then run a session from the latest model (the seed
    plus ``rounds_before`` rounds) and check its result exact."""
    combiner = fed.processes["combiner"]
    wait_until(lambda: online_count(fed) >= clients, 600, f"{clients} clients online", interval=1.0)
    pid = combiner.popen.pid
    cpu0, w0, t0 = cpu_seconds(pid), writes(counter), time.monotonic()
    time.sleep(idle_window)
    elapsed = time.monotonic() - t0
    idle_cpu = (cpu_seconds(pid) - cpu0) / elapsed * 100
    idle_writes = (writes(counter) - w0) / elapsed
    if rounds == 0:
        nothing = {"combiner": 0.0, "api": 0.0, "swarm": 0.0}
        return Row(clients, float("nan"), "-", pid_status(pid, "VmRSS"), idle_cpu, idle_writes, nothing)
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    busy0 = process_cpu(fed)
    session_id = fed.api.start_session(
        name=f"swarm-{clients}",
        rounds=rounds,
        round_timeout=120,
        min_clients=clients,
        requested_clients=clients,
        validate=False,
    )
    try:
        session = fed.api.wait_for_session(session_id, timeout=rounds * 150)
    except SessionTimeout as exc:
        session = {"status": "unfinished", "error": str(exc)[:80]}
    rss = pid_status(pid, "VmHWM")
    busy = {k: (v - busy0[k]) / rounds for k, v in process_cpu(fed).items()}
    records = fed.api.get_rounds(session_id=session_id, sort_key="index")["result"]
    seconds = [
        (datetime.fromisoformat(r["finished_at"]) - datetime.fromisoformat(r["started_at"])).total_seconds()
        for r in records
        if r.get("finished_at")
    ]
    updates = "/".join(str(len(r["clients"])) for r in records)
    if session["status"] != "Finished":
        updates += f" ({session['status']}: {session.get('error')})"
    else:
        check_model(fed, records[-1]["model_id"], seed, rounds_before + rounds)
    return Row(
        clients,
        statistics.median(seconds) if seconds else float("nan"),
        updates,
        rss,
        idle_cpu,
        idle_writes,
        busy,
    )


def process_cpu(fed: Federation) -> dict[str, float]:
    """CPU seconds so far of the combiner, the API and the swarm processes together."""
    totals = {"combiner": 0.0, "api": 0.0, "swarm": 0.0}
    for name, process in fed.processes.items():
        kind = "swarm" if name.startswith("swarm") else name
        if kind in totals and process.popen.poll() is None:
            totals[kind] += cpu_seconds(process.popen.pid)
    return totals


def print_table(rows: list[Row], size_mb: int, rounds: int, idle_window: float) -> None:
    header = (
        f"{'clients':>7} {'round s':>8} {'updates per round':>24} {'RSS MB':>7} {'idle CPU %':>10} "
        f"{'writes/s':>9} {'CPU s/round: combiner':>22} {'api':>5} {'swarm':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.clients:>7} {r.round_s:>8.2f} {r.updates:>24} {r.rss_mb:>7.0f} {r.idle_cpu:>10.1f} "
            f"{r.idle_writes:>9.1f} {r.round_cpu['combiner']:>22.1f} {r.round_cpu['api']:>5.1f} "
            f"{r.round_cpu['swarm']:>6.1f}"
        )
    print(
        f"{size_mb} MB model, {rounds} rounds per session, median round; RSS = combiner VmHWM during the "
        f"session;\nidle CPU (of one core) and statestore writes over {idle_window:g} s with every client "
        f"connected and no round. Load average now {', '.join(f'{x:.1f}' for x in os.getloadavg())}."
    )


@contextlib.contextmanager
def swarm_work_dir(root: Path) -> Iterator[Path]:
    """Where the swarm's clients keep their task files: in memory (/dev/shm) where there is one. Each
    real client has a disk of its own; a thousand clients creating and deleting four files a round on
    one ext4 file system spent 11 % of the swarm's CPU in the kernel's inode allocation."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield root / "swarm"
        return
    with tempfile.TemporaryDirectory(prefix="scaleout-swarm-", dir=shm) as folder:
        yield Path(folder)


def bench(args: argparse.Namespace) -> None:
    # SIGTERM unwinds like Ctrl-C, so the API, the combiner and the swarm processes are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    rows = []
    with contextlib.ExitStack() as stack:
        if args.keep is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scaleout-swarm-")))
        else:
            root = args.keep
            root.mkdir(parents=True, exist_ok=False)
        db = root / "statestore.db"
        fed = stack.enter_context(federation(root, f"sqlite:///{db}", f"file://{root}/models"))
        fed.start_combiner("combiner")
        seed = seed_model(args.size)
        fed.api.set_active_model(get_helper("numpyhelper").save(seed, str(root / "seed.npz")))
        counter = stack.enter_context(counted_writes(db))
        package = write_package(root / "swarm-package")
        work_dir = stack.enter_context(swarm_work_dir(root))
        running = 0
        for step, clients in enumerate(sorted(args.clients)):
            start_swarm(
                fed, clients - running, args.processes, first=running, package=package, work_dir=work_dir
            )
            running = clients
            rows.append(
                measure(fed, counter, clients, args.rounds, seed, step * args.rounds, args.idle_window)
            )
            print_table(
                rows[-1:], args.size, args.rounds, args.idle_window
            )  # as it comes: a later step may not end
            sys.stdout.flush()
    print_table(rows, args.size, args.rounds, args.idle_window)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    clients = commands.add_parser("clients", help="run N swarm clients until SIGTERM")
    clients.add_argument("--api-url", required=True)
    clients.add_argument("--count", type=int, required=True)
    clients.add_argument("--first", type=int, default=0, help="number of the first client (ids swarm-N)")
    clients.add_argument("--work-dir", type=Path, required=True)
    clients.add_argument("--package", type=Path, required=True)
    clients.add_argument("--varied", action="store_true", help="client i adds i %% 3 + 1, claims i %% 5 + 1")
    clients.add_argument("--train-seconds", type=float, default=0.0, help="seconds every train step takes")
    clients.add_argument("--slow-fraction", type=float, default=0.0, help="fraction of slow clients")
    clients.add_argument(
        "--slow-factor", type=float, default=1.0, help="slow clients take this many times longer"
    )
    bench_parser = commands.add_parser("bench", help="measure rounds over growing swarms")
    bench_parser.add_argument("--clients", type=int, nargs="+", default=[100, 300, 1000])
    bench_parser.add_argument("--processes", type=int, default=2, help="swarm processes per step")
    bench_parser.add_argument("--size", type=int, default=1, help="model size in MB")
    bench_parser.add_argument(
        "--rounds", type=int, default=3, help="rounds per session; 0 measures the idle swarm only"
    )
    bench_parser.add_argument(
        "--idle-window",
        type=float,
        default=20.0,
        help="seconds over which idle CPU and writes are measured (>= 60 covers a heartbeat write each)",
    )
    bench_parser.add_argument(
        "--keep", type=Path, help="work in this new folder and keep it (every process's log is in logs/)"
    )
    args = parser.parse_args()
    if args.command == "clients":
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        token = os.environ.get("SCALEOUT_API_TOKEN") or None
        pace = Pace(args.train_seconds, args.slow_fraction, args.slow_factor)
        asyncio.run(
            run_clients(
                args.api_url, args.count, args.first, args.work_dir, args.package, token, args.varied, pace
            )
        )
    else:
        bench(args)


if __name__ == "__main__":
    main()
