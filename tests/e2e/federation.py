"""A real federation of processes on loopback: `scaleout api`, `scaleout combiner`, `scaleout client start`.

Used by the end-to-end tests and by benchmarks/round_bench.py. Processes are started with the real CLI
and driven through the public APIClient; nothing of ours is mocked.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from scaleout import APIClient

T = TypeVar("T")
SCALEOUT = str(Path(sys.executable).with_name("scaleout"))
START_TIMEOUT = 60.0
# Compute packages' python_envs are cached here across test runs (building one takes a while).
TEST_ENV = {"SCALEOUT_ENV_DIR": str(Path(__file__).resolve().parents[2] / ".scaleout" / "test-envs")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Call condition until it returns a truthy value; fail naming `what` after timeout seconds.

    Used only across process boundaries, where there is no event to wait on (a process coming up).
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception as error:  # the process is not up yet
            last_error = error
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def port(self) -> int:
        """The port it was started on (`--port`), to restart it on the same one."""
        args = list(self.popen.args)  # type: ignore[arg-type]
        return int(args[args.index("--port") + 1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@dataclass
class Federation:
    """Starts and stops the processes of one federation under `root`."""

    root: Path
    db: str
    models: str
    env: Mapping[str, str] = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)
    processes: dict[str, Process] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        """SCALEOUT_TLS_CERT in env makes the API (and combiners) serve TLS; SCALEOUT_TLS_CA verifies it."""
        return bool(self.env.get("SCALEOUT_TLS_CERT"))

    @property
    def api_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.api_port}"

    @property
    def api(self) -> APIClient:
        # SCALEOUT_API_TOKEN in env reaches every process spawned (api, combiners, clients); the test's
        # APIClient uses it too.
        token, ca = self.env.get("SCALEOUT_API_TOKEN"), self.env.get("SCALEOUT_TLS_CA")
        return APIClient("127.0.0.1", self.api_port, self.tls, token, verify=ca or True)

    def _spawn(
        self,
        name: str,
        args: list[str],
        extra_env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        program: str = SCALEOUT,
        prefix: Sequence[str] = (),
    ) -> Process:
        """Run `scaleout *args` (or `program *args`), after `prefix` (e.g. `ip netns exec NS`), in cwd
        (default: root), its output appended to root/logs/NAME.log.

        Appended, so that a process restarted under its name keeps the log of its previous life.
        """
        log_path = self.root / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, **(extra_env or {}), "PYTHONUNBUFFERED": "1"}
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                [*prefix, program, *args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd or self.root
            )
        process = Process(name, popen, log_path)
        self.processes[name] = process
        return process

    def spawn_python(self, name: str, args: list[str], prefix: Sequence[str] = ()) -> Process:
        """Run ``python *args`` with this interpreter (a helper process), logged as NAME."""
        return self._spawn(name, args, program=sys.executable, prefix=prefix)

    def _check_alive(self, process: Process) -> None:
        if process.popen.poll() is not None:
            raise RuntimeError(
                f"{process.name} exited with {process.popen.returncode}:\n{process.log()[-3000:]}"
            )

    def start_api(self) -> Process:
        process = self._spawn(
            "api",
            [
                "api",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
                "--db",
                self.db,
                "--models",
                self.models,
            ],
        )

        def healthy() -> bool:
            self._check_alive(process)
            return self.api.health()["status"] == "ok"

        wait_until(healthy, START_TIMEOUT, "the API to answer /health")
        return process

    def start_combiner(
        self, name: str = "combiner", port: int | None = None, extra_env: Mapping[str, str] | None = None
    ) -> Process:
        port = port or free_port()
        spawned = datetime.now(UTC)
        process = self._spawn(
            name,
            [
                "combiner",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--name",
                name,
                "--db",
                self.db,
                "--models",
                self.models,
                "--registry-interval",
                "1",
            ],
            extra_env,
        )

        def registered() -> bool:
            # last_seen after the spawn: a combiner restarted under its name has a record already
            self._check_alive(process)
            return any(
                c["name"] == name and c["port"] == port and datetime.fromisoformat(c["last_seen"]) >= spawned
                for c in self.api.get_combiners()["result"]
            )

        wait_until(registered, START_TIMEOUT, f"combiner {name} to register")
        return process

    def start_client(
        self,
        name: str,
        partition: int = 0,
        partitions: int = 1,
        local_package: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> Process:
        args = [
            "client",
            "start",
            "--api-url",
            self.api_url,
            "--name",
            name,
            "--client-id",
            name,
            "--work-dir",
            str(self.root / "clients" / name),
            "--heartbeat-interval",
            "2",
        ]
        if local_package is not None:
            args += ["--local-package", str(local_package)]
        env = {
            "SCALEOUT_DATA_PARTITION": str(partition),
            "SCALEOUT_NUM_PARTITIONS": str(partitions),
            **(extra_env or {}),
        }
        return self._spawn(name, args, env)

    def wait_for_clients(self, count: int, timeout: float = START_TIMEOUT) -> list[dict[str, Any]]:
        def online() -> list[dict[str, Any]] | None:
            for process in self.processes.values():
                self._check_alive(process)
            clients = [c for c in self.api.get_clients()["result"] if c["status"] == "online"]
            return clients if len(clients) >= count else None

        return wait_until(online, timeout, f"{count} clients to be online")

    def logs(self) -> str:
        return "\n".join(f"===== {name}\n{p.log()[-4000:]}" for name, p in self.processes.items())

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()


@contextmanager
def federation(
    root: Path, db: str, models: str, env: Mapping[str, str] | None = None
) -> Iterator[Federation]:
    """A federation with the API running; stopped (all processes) on exit, logs printed on failure."""
    fed = Federation(root, db, models, env or {})
    try:
        fed.start_api()
        yield fed
    except BaseException:
        print(fed.logs(), file=sys.stderr)
        raise
    finally:
        fed.stop()


def make_package(root: Path, train_source: str, validate_source: str | None = None) -> Path:
    """A compute package in root/package whose entry points run the given Python sources."""
    package = root / "package"
    if package.exists():
        shutil.rmtree(package)
    package.mkdir(parents=True)
    entry_points = {"train": "python train.py"}
    (package / "train.py").write_text(train_source)
    if validate_source is not None:
        (package / "validate.py").write_text(validate_source)
        entry_points["validate"] = "python validate.py"
    lines = ["entry_points:"] + [f"  {k}:\n    command: {v}" for k, v in entry_points.items()]
    (package / "scaleout.yaml").write_text("\n".join(lines) + "\n")
    return package
