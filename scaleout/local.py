"""The embedded federation behind `scaleout local`: API + controller + one combiner in this process,
N edge clients as real `scaleout client start` processes, SQLite + files under one work folder.

Everything talks over the same wires as a deployed federation (REST, gRPC, the model repository);
only the processes are fewer.
"""

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from scaleout.api.app import create_app
from scaleout.api.client import ENDED, APIClient, APIError
from scaleout.api.settings import DEFAULT_PORT, ApiSettings
from scaleout.client.dispatcher import Dispatcher
from scaleout.combiner.server import Combiner
from scaleout.combiner.settings import CombinerSettings
from scaleout.controller import Controller, ControllerSettings
from scaleout.errors import ScaleoutError
from scaleout.seed import build_seed
from scaleout.store import open_model_repository, open_statestore
from scaleout.store.uri import S3Credentials, work_dir_models_uri, work_dir_statestore_uri

log = logging.getLogger(__name__)

CLIENT_STOP_GRACE = 10.0


class LocalError(ScaleoutError):
    """The local federation could not start or run; the message says which part and why."""


@dataclass(frozen=True)
class LocalSettings:
    package_dir: Path
    clients: int = 3
    rounds: int = 5
    seed: Path | None = None
    work_dir: Path = Path(".scaleout")
    db: str | None = None
    models: str | None = None
    s3_credentials: S3Credentials | None = None
    round_timeout: float = 180.0
    min_clients: int | None = None
    validate: bool = True
    aggregator: str = "fedavg"
    aggregator_kwargs: dict[str, float] = field(default_factory=dict)
    mode: str = "sync"
    buffer_size: int | None = None  # sync: end a round after this many updates; async: updates per version
    # The async SessionConfig fields given (max_versions, staleness, ...); the API checks them.
    async_config: dict[str, Any] = field(default_factory=dict)
    env_dir: Path | None = None  # python_env venv cache for the seed build and the clients; None: default
    startup_timeout: float = 900.0  # the first client may build the package's python_env
    port: int = DEFAULT_PORT  # the API's and dashboard's port when free, else any free one
    serve: bool = False  # keep the API, dashboard and federation up after the session until Ctrl-C

    @property
    def db_uri(self) -> str:
        return self.db or work_dir_statestore_uri(self.work_dir)

    @property
    def models_uri(self) -> str:
        return self.models or work_dir_models_uri(self.work_dir)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listen_socket(preferred: int) -> socket.socket:
    """A socket bound on 127.0.0.1 to `preferred` when that port is free, else to any free port.

    Bound here and handed to uvicorn, so no other process can take the port between choice and use.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is still free
    try:
        sock.bind(("127.0.0.1", preferred))
    except OSError:
        sock.bind(("127.0.0.1", 0))
    return sock


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: `scaleout local` stops everything in order itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class ClientProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class LocalFederation:
    """Starts, runs and stops one local federation; `run()` is the whole life cycle."""

    settings: LocalSettings
    on_status: Callable[[dict[str, Any]], None] = lambda status: None
    # Called with the session's id once it has ended, before --serve keeps everything up.
    on_session_end: Callable[[str], None] = lambda session_id: None
    clients: list[ClientProcess] = field(default_factory=list)
    session_id: str | None = None

    async def run(self) -> str:
        """Run a session to its end and return its id; everything is stopped on the way out.

        With `serve`, the API, dashboard, combiner and clients stay up after the session until
        SIGINT/SIGTERM.
        """
        work = self.settings.work_dir.resolve()
        work.mkdir(parents=True, exist_ok=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        statestore = await asyncio.to_thread(open_statestore, self.settings.db_uri)
        repository = await asyncio.to_thread(
            open_model_repository, self.settings.models_uri, self.settings.s3_credentials
        )
        # The controller makes its temporary files (reduce, server step) in it; it must exist.
        (work / "controller").mkdir(exist_ok=True)
        controller = Controller(statestore, repository, ControllerSettings(work_dir=str(work / "controller")))
        listener = listen_socket(self.settings.port)
        api_port = listener.getsockname()[1]
        app = create_app(
            ApiSettings(port=api_port, db_uri=self.settings.db_uri, models_uri=self.settings.models_uri),
            statestore,
            repository,
            controller,
        )
        server = _EmbeddedServer(uvicorn.Config(app, host="127.0.0.1", port=api_port, log_level="warning"))
        combiner = Combiner(
            CombinerSettings(
                port=free_port(),
                db=self.settings.db_uri,
                models=self.settings.models_uri,
                work_dir=work / "combiner",
                registry_interval=2.0,
            ),
            statestore,
            repository,
        )
        serving = asyncio.create_task(server.serve(sockets=[listener]), name="api")
        api = APIClient("127.0.0.1", api_port)
        try:
            await self._wait_for_api(server, serving)
            self.on_status({"stage": "listening", "url": f"http://127.0.0.1:{api_port}/"})
            await combiner.start()
            await self._prepare(api, work)
            self._start_clients(api_port, work)
            await self._wait_for_clients(combiner, stop)
            self.session_id = await self._run_session(api, controller, stop)
            self.on_session_end(self.session_id)
            if self.settings.serve:
                self.on_status({"stage": "serving", "url": f"http://127.0.0.1:{api_port}/"})
                await stop.wait()
            return self.session_id
        finally:
            await self._shutdown(api, combiner, server, serving)
            listener.close()
            await asyncio.to_thread(statestore.close)
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    async def _wait_for_api(self, server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
        """uvicorn sets `started` once it listens; wait for that, bounded, failing if it died instead."""
        deadline = time.monotonic() + 30
        while not server.started:
            if serving.done():
                raise LocalError(f"the API could not start: {serving.exception()!r}")
            if time.monotonic() > deadline:
                raise LocalError("the API did not start listening within 30 s")
            await asyncio.sleep(0.02)  # uvicorn exposes no event for this

    async def _prepare(self, api: APIClient, work: Path) -> None:
        """Upload the compute package and the seed model (built now unless --seed was given)."""
        self.on_status({"stage": "uploading the compute package"})
        await asyncio.to_thread(api.set_active_package, self.settings.package_dir)
        seed = self.settings.seed
        if seed is None:
            self.on_status({"stage": "building the seed model"})
            built = await asyncio.to_thread(build_seed, self.settings.package_dir, work, self._run_build)
            seed = built.require()
        await asyncio.to_thread(api.set_active_model, seed)

    def _run_build(self, extra_env: dict[str, str]) -> None:
        """The package's build entry point, in the same venv cache the clients use."""
        Dispatcher(self.settings.package_dir, env_dir=self.settings.env_dir).run("build", extra_env=extra_env)

    def _start_clients(self, api_port: int, work: Path) -> None:
        count = self.settings.clients
        for index in range(count):
            name = f"client-{index}"
            log_path = work / "logs" / f"{name}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            env = {
                **os.environ,
                "SCALEOUT_DATA_PARTITION": str(index),
                "SCALEOUT_NUM_PARTITIONS": str(count),
                "PYTHONUNBUFFERED": "1",
            }
            command = [
                sys.executable, "-m", "scaleout", "client", "start",
                "--api-url", f"http://127.0.0.1:{api_port}", "--name", name, "--client-id", f"local-{name}",
                "--work-dir", str(work / "clients" / name), "--heartbeat-interval", "5",
            ]  # fmt: skip
            if self.settings.env_dir is not None:
                command += ["--env-dir", str(self.settings.env_dir)]
            with log_path.open("wb") as log_file:
                popen = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
            self.clients.append(ClientProcess(name, popen, log_path))

    async def _wait_for_clients(self, combiner: Combiner, stop: asyncio.Event) -> None:
        """Until every client holds a task stream to the combiner (bounded by startup_timeout)."""
        deadline = time.monotonic() + self.settings.startup_timeout
        while (online := len(combiner.registry.online())) < self.settings.clients:
            self._check_clients()
            if stop.is_set():
                raise LocalError("interrupted while the clients were starting")
            if time.monotonic() > deadline:
                raise LocalError(
                    f"only {online} of {self.settings.clients} clients connected within "
                    f"{self.settings.startup_timeout:g} s; see the logs in {self.settings.work_dir / 'logs'}"
                )
            self.on_status(
                {"stage": "waiting for clients", "online": online, "clients": self.settings.clients}
            )
            # Woken by every connect/disconnect; the bound is how often dead clients and Ctrl-C are noticed.
            with contextlib.suppress(TimeoutError):
                await combiner.registry.wait_for(lambda: len(combiner.registry.online()) != online, 1.0)

    def _check_clients(self) -> None:
        for client in self.clients:
            if client.popen.poll() is not None:
                raise LocalError(
                    f"{client.name} exited with code {client.popen.returncode}; "
                    f"its last lines:\n{client.tail()}"
                )

    async def _run_session(self, api: APIClient, controller: Controller, stop: asyncio.Event) -> str:
        # A session an earlier run left Started (killed) would be resumed by the controller and block
        # this run's session (one at a time): a new `scaleout local` run ends it and starts afresh.
        leftovers = await asyncio.to_thread(api.get_sessions, status="Started")
        for leftover in leftovers["result"]:
            try:
                await asyncio.to_thread(api.stop_session, leftover["id"])
            except APIError as error:
                if error.status_code != 409:  # 409: it ended by itself meanwhile
                    raise
        session_id = await asyncio.to_thread(
            api.start_session,
            name="scaleout local",
            rounds=self.settings.rounds,
            round_timeout=self.settings.round_timeout,
            min_clients=self.settings.min_clients or self.settings.clients,
            validate=self.settings.validate,
            aggregator=self.settings.aggregator,
            aggregator_kwargs=self.settings.aggregator_kwargs,
            buffer_size=self.settings.buffer_size,
            mode=self.settings.mode,
            **self.settings.async_config,
        )
        stats: dict[str, Any] | None = None
        while not stop.is_set():
            session = await asyncio.to_thread(api.get_session, session_id)
            status = {"stage": "session", "session": session, "round": controller.progress(session_id)}
            if session["config"]["mode"] == "async":  # its pace, read again only when a version is added
                if stats is None or stats["versions"] != session["rounds_done"]:
                    stats = await asyncio.to_thread(api.get_session_stats, session_id)
                status["stats"] = stats
            self.on_status(status)
            if session["status"] in ENDED:
                return session_id
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)
        await asyncio.to_thread(api.stop_session, session_id)
        return session_id

    async def _shutdown(
        self, api: APIClient, combiner: Combiner, server: uvicorn.Server, serving: asyncio.Task[None]
    ) -> None:
        """Clients first (they would reconnect), then the combiner, then the API and its controller."""
        self.on_status({"stage": "stopping"})
        for client in self.clients:
            if client.popen.poll() is None:
                client.popen.send_signal(signal.SIGTERM)
        for client in self.clients:
            try:
                await asyncio.to_thread(client.popen.wait, CLIENT_STOP_GRACE)
            except subprocess.TimeoutExpired:
                client.popen.kill()
        # Shutdown goes on past a failing part, so the rest still stops; the failure is logged, not lost.
        try:
            await combiner.stop()
        except Exception:
            log.exception("the combiner did not stop cleanly")
        api.close()
        server.should_exit = True
        try:
            await serving
        except Exception:
            log.exception("the API server did not stop cleanly")
