"""The edge client: get a combiner from the API, get the compute package, then serve tasks until stopped.

Life of a client (``EdgeClient.run``):

0. Its credential (``credential``): ``--token``, else one kept from an earlier enrollment, else one
   obtained now with ``--enroll-secret``; a client credential also fixes the client id.
1. ``POST /api/v1/clients/add`` until the API assigns a combiner (it answers "not yet" while no
   package is active or no combiner is online; see ``assignment``).
2. The compute package: ``--local-package`` as is, or the active one downloaded, checked and
   unpacked safely (``package_download``).
3. ``startup`` once, if the package defines it, in the package's environment (the dispatcher
   builds its python_env first).
4. Open ``TaskStream`` and keep it open (an open stream is what "online" means), send a heartbeat
   every ``heartbeat_interval``, and run the tasks that arrive one at a time (``task_loop``); a task
   of a newer round, or the loss of the task's connection, abandons the task running.
5. When the connection breaks, reconnect with backoff and jitter; after ``reconnect_attempts``
   failures in a row, or at once when the combiner says it does not know this client, ask the API
   for a new assignment. A combiner that refuses the token (UNAUTHENTICATED), or whose certificate
   does not verify, ends ``run`` with an error: no retry can fix either. SIGINT/SIGTERM cancel the
   stream and end ``run`` normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import filelock
import grpc
import httpx

from scaleout.client.assignment import Assignment, request_assignment
from scaleout.client.backoff import Backoff
from scaleout.client.credential import CREDENTIAL_FILE, bound_client_id, obtain_token
from scaleout.client.dispatcher import Dispatcher
from scaleout.client.model_transfer import ModelStreams, Pace
from scaleout.client.package_download import fetch_package
from scaleout.client.rest import open_api
from scaleout.client.settings import CLIENT_ID_FILE, ClientSettings, resolve_client_id
from scaleout.client.task_loop import TaskLoop
from scaleout.client.tasks import Link, TaskRunner, remove_stale_task_files
from scaleout.client.threads import run_blocking
from scaleout.compute_package import PackageLimits
from scaleout.errors import PackageError, ScaleoutError
from scaleout.proto import scaleout_pb2, scaleout_pb2_grpc
from scaleout.proto.channels import certificate_refusal, open_channel
from scaleout.tls import ClientTLS, TLSError

logger = logging.getLogger(__name__)

LOCK_FILE = ".client.lock"
# A 4 MiB chunk plus its framing is just over gRPC's 4 MiB default; leave ample room.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]
# An upload's channel dials a connection of its own (gRPC would otherwise share the task stream's
# connection between channels with the same target and options); see tasks.Link.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
HEARTBEAT_MISSES = 2  # missed heartbeats in a row that end a connection which had worked
# ... when the connection is up (HTTP/2 keepalive answered) and only the combiner's answer is late: a
# combiner busy with a round of thousands of clients answers in tens of seconds, and a client that
# drops its connection then loses its task and adds a reconnect to the load.
BUSY_MISSES = 5
# A heartbeat that fails with these did not reach a live combiner; any other answer, even an
# error, shows that the combiner is there.
UNREACHABLE_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)
# The task stream was refused by a combiner that does not take this client: retrying it will not help.
GONE_CODES = frozenset(
    {
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


class ConnectionLost(ScaleoutError):
    """The task stream to the combiner ended or stopped answering."""


class Unauthenticated(ScaleoutError):
    """The combiner refused this client's token: no retry or other combiner can fix that, so it stops."""


@dataclass(frozen=True)
class SessionEnd:
    """How one connection to a combiner ended."""

    reason: str
    established: bool  # the combiner answered on this connection before it ended
    gone: bool  # the combiner refused this client: ask the API for another one at once


class EdgeClient:
    """One edge client; ``await run()`` serves until ``stop()`` or SIGINT/SIGTERM."""

    def __init__(
        self,
        settings: ClientSettings,
        dispatcher: Dispatcher | None = None,
        channel_options: Sequence[tuple[str, int]] = (),
    ) -> None:
        """``dispatcher`` runs the entry points in place of one built from the package (a load generator
        trains in process with it); ``channel_options`` are added to every channel's."""
        self.settings = settings
        self.work_dir = settings.work_dir.resolve()
        self.client_id = resolve_client_id(self.work_dir, settings.client_id)
        self.name = settings.name or f"client-{self.client_id[:8]}"
        self._backoff = Backoff(settings.backoff_initial, settings.backoff_max)
        self._reassign_backoff = Backoff(settings.backoff_initial, settings.backoff_max)
        self._stop = asyncio.Event()
        self._runner: TaskRunner | None = None
        self._tasks: TaskLoop | None = None
        self._dispatcher: Dispatcher | None = dispatcher
        self._token = settings.token
        self._options = [*CHANNEL_OPTIONS, *keepalive_options(settings), *channel_options]  # of every channel

    def stop(self) -> None:
        """Ask ``run`` to end: the stream is cancelled and ``run`` returns. Call from the loop's thread."""
        self._stop.set()

    async def run(self, handle_signals: bool = True) -> None:
        """Serve until stopped; raise ScaleoutError when the client cannot go on (the message says why)."""
        with self._lock_work_dir(), self._signals(handle_signals):
            if removed := remove_stale_task_files(self.work_dir):
                logger.info("removed %d task files left in %s by an earlier run", removed, self.work_dir)
            main = asyncio.create_task(self._main(), name=f"client-{self.client_id}")
            stopped = asyncio.create_task(self._stop.wait())
            await asyncio.wait({main, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if main.done():
                main.result()  # a fatal error; _main never returns on its own
                return
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await main
            await asyncio.to_thread(self._stop_entry_points)
            logger.info("client %s stopped", self.client_id)

    async def _main(self) -> None:
        settings = self.settings
        self._token = await obtain_token(
            settings.api_url,
            self.work_dir,
            settings.token,
            settings.enroll_secret,
            settings.name or "",
            self._backoff,
            settings.tls.ca,
        )
        async with open_api(settings.api_url, self._token, settings.tls.ca) as api:
            if self._token:
                await self._adopt_identity(api)
            assignment = await self._assign(api)
            package_dir = await self._package(api)
            dispatcher = await self._prepare(package_dir)
            settings = self.settings
            self._runner = TaskRunner(
                dispatcher,
                self.work_dir,
                self.client_id,
                settings.chunk_size,
                settings.task_timeout,
                settings.rpc_deadline,
                Pace(settings.rpc_deadline, settings.min_transfer_rate, settings.max_queue_wait),
            )
            self._tasks = TaskLoop(self._runner)
            worker = asyncio.create_task(self._tasks.run(), name="task-loop")
            try:
                while True:
                    await self._serve(assignment)
                    # Paced by its own backoff: an API that keeps naming a combiner which refuses
                    # this client must not turn into a tight loop of assignments.
                    await asyncio.sleep(self._reassign_backoff.next_delay())
                    assignment = await self._assign(api)
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker

    async def _adopt_identity(self, api: httpx.AsyncClient) -> None:
        """A client credential acts as one client id: use it (and keep it in the work dir)."""
        bound = await bound_client_id(api, self._backoff, self.work_dir / CREDENTIAL_FILE)
        if bound is None or bound == self.client_id:
            return
        if self.settings.client_id:
            raise ScaleoutError(
                f"--client-id is {self.settings.client_id} but the credential belongs to client {bound}; "
                "start the client without --client-id"
            )
        self.client_id = bound
        self.name = self.settings.name or f"client-{bound[:8]}"
        (self.work_dir / CLIENT_ID_FILE).write_text(bound + "\n", encoding="utf-8")
        logger.info("client id %s, from the credential", bound)

    async def _assign(self, api: httpx.AsyncClient) -> Assignment:
        package = "local" if self.settings.local_package else "remote"
        return await request_assignment(
            api, self.client_id, self.name, package, self._backoff, self.settings.assign_timeout
        )

    async def _package(self, api: httpx.AsyncClient) -> Path:
        local = self.settings.local_package
        if local is None:
            limits = PackageLimits(max_unpacked_bytes=self.settings.max_unpacked_bytes)
            folder = await fetch_package(api, self.work_dir, self._backoff, limits)
            logger.info("compute package downloaded and unpacked in %s", folder)
            return folder
        if not local.is_dir():
            raise PackageError(f"--local-package {local} is not a folder; pass the compute package folder")
        return local.resolve()

    async def _prepare(self, package_dir: Path) -> Dispatcher:
        """Load scaleout.yaml, build the package's environment, and run ``startup`` once."""
        if self._dispatcher is None:
            self._dispatcher = Dispatcher(package_dir, env_dir=self.settings.env_dir)
        dispatcher = self._dispatcher
        await run_blocking(dispatcher.environment, name="python-env")
        if dispatcher.has("startup"):
            logger.info("running entry point 'startup'")
            try:
                await run_blocking(dispatcher.run, "startup", [], None, self.settings.task_timeout)
            except PackageError as exc:
                raise PackageError(f"the client cannot start: {exc}") from exc
        return dispatcher

    async def _serve(self, assignment: Assignment) -> None:
        """Stay connected to the assigned combiner; return when it is time to ask the API again."""
        failures = 0
        while True:
            end = await self._session(assignment)
            if end.gone:
                logger.warning("combiner %s refused this client (%s)", assignment.combiner, end.reason)
                return
            if end.established:
                failures = 0
                self._reassign_backoff.reset()
            else:
                failures += 1
            if failures >= self.settings.reconnect_attempts:
                logger.warning(
                    "no connection to combiner %s at %s after %d attempts (%s); asking the API again",
                    assignment.combiner,
                    assignment.address,
                    failures,
                    end.reason,
                )
                return
            delay = self._backoff.next_delay()
            logger.warning(
                "combiner %s %s (%s); reconnecting in %.1f s",
                assignment.combiner,
                "closed the connection" if end.established else "is not reachable",
                end.reason,
                delay,
            )
            await asyncio.sleep(delay)

    async def _session(self, assignment: Assignment) -> SessionEnd:
        """One connection: the task stream and the heartbeats, until either fails."""
        # The token rides on every call of this channel (TaskStream, heartbeats, model transfers).
        tls = self.settings.tls if assignment.tls else None
        channel = open_channel(assignment.address, tls, self._token, self._options)
        link = Link(
            scaleout_pb2_grpc.CombinerClientStub(channel),
            ModelStreams(channel),
            name=assignment.combiner,
            open_upload=functools.partial(
                open_channel, assignment.address, tls, self._token, [*self._options, *OWN_CONNECTION]
            ),
        )
        if self._tasks is not None:
            self._tasks.use_link(link)
        hello = scaleout_pb2.ClientAvailableMessage(
            client_id=self.client_id,
            data=json.dumps({"name": self.name}),
            timestamp=datetime.now(UTC).isoformat(),
        )
        call = link.combiner.TaskStream(hello)
        parts = [
            asyncio.create_task(self._receive(call, link)),
            asyncio.create_task(self._heartbeat(link, channel)),
        ]
        try:
            done, _ = await asyncio.wait(parts, return_when=asyncio.FIRST_COMPLETED)
            return _session_end(next(iter(done)).exception(), link, assignment, tls)
        finally:
            link.closed = True
            if self._tasks is not None:  # its tasks' answers can no longer be sent: stop them first
                await self._tasks.close_link(link)
            for part in parts:
                part.cancel()
            await asyncio.gather(*parts, return_exceptions=True)
            call.cancel()
            await channel.close()

    async def _receive(self, call: grpc.aio.UnaryStreamCall, link: Link) -> None:
        async for task in call:
            self._stable(link)
            logger.info("received %s task %s (round %s)", task.type, task.correlation_id, task.round_id)
            assert self._tasks is not None  # created before the first connection
            self._tasks.submit(task, link)
        raise ConnectionLost("the combiner closed the task stream")

    async def _heartbeat(self, link: Link, channel: grpc.aio.Channel) -> None:
        """Send heartbeats; missed ones end the connection, since the stream alone may hang silently.

        The first answer shows the combiner is reachable; the second that the connection held for a
        heartbeat interval, which is when it counts as working (and the backoff starts over). A first
        heartbeat that fails ends the attempt at once, and HEARTBEAT_MISSES in a row a connection,
        unless they only ran out of time on a connection that is up (HTTP/2 keepalive checks that):
        the combiner is there but busy, as when thousands of clients connect at once or train in one
        round, and dropping the connection to dial again would only add to its load (2,000 swarm
        clients so reconnected in a loop and never all got online). BUSY_MISSES of those end it.
        """
        interval = self.settings.heartbeat_interval
        beat = scaleout_pb2.Heartbeat(client_id=self.client_id, heartbeat_interval_ms=int(interval * 1000))
        answers = misses = 0
        while True:
            try:
                await link.combiner.SendHeartbeat(beat, timeout=self.settings.heartbeat_deadline)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    raise
                if exc.code() in UNREACHABLE_CODES:
                    misses += 1
                    busy = _busy(exc, channel)
                    if (answers == 0 and not busy) or misses >= (BUSY_MISSES if busy else HEARTBEAT_MISSES):
                        raise
                    logger.warning(
                        "heartbeat to combiner %s missed: %s%s",
                        link.name,
                        exc.code().name,
                        " (connected: the combiner is busy)" if busy else "",
                    )
                    await asyncio.sleep(interval)
                    continue
                logger.warning("combiner %s answered a heartbeat with %s", link.name, _rpc_error(exc))
            misses, answers = 0, answers + 1
            if answers == 1:
                logger.info(
                    "connected to combiner %s as client %s (%s)", link.name, self.client_id, self.name
                )
            elif answers == 2:
                self._stable(link)
            await asyncio.sleep(interval)

    def _stable(self, link: Link) -> None:
        """The connection works: later failures start a fresh count of attempts and delays."""
        if not link.established:
            link.established = True
            self._backoff.reset()

    @contextlib.contextmanager
    def _lock_work_dir(self) -> Iterator[None]:
        """One client per work dir: two would share temp files, the package folder and the id."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.work_dir / LOCK_FILE, timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout as exc:
            raise ScaleoutError(
                f"another client runs with work dir {self.work_dir}; give each client its own --work-dir"
            ) from exc
        try:
            yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def _signals(self, enabled: bool) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM) if enabled else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.stop)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    def _stop_entry_points(self) -> None:
        """An entry point still running at shutdown is stopped: it must not outlive its client."""
        if self._dispatcher is not None and (stopped := self._dispatcher.stop()):
            logger.warning("stopped %d entry point(s) still running at shutdown", stopped)


def keepalive_options(settings: ClientSettings) -> list[tuple[str, int]]:
    """HTTP/2 keepalive towards the combiner: a combiner that hangs or vanishes without closing the
    connection is noticed within keepalive_time + keepalive_timeout, and every call on the connection
    (a stuck transfer included) fails at once. gRPC bounds the ping by ``grpc.http2.ping_timeout_ms``
    (60 s when left out), not by ``keepalive_timeout_ms``; both are set (see combiner/server.py).
    """
    timeout_ms = round(settings.keepalive_timeout * 1000)
    return [
        ("grpc.keepalive_time_ms", round(settings.keepalive_time * 1000)),
        ("grpc.keepalive_timeout_ms", timeout_ms),
        ("grpc.http2.ping_timeout_ms", timeout_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def _session_end(
    error: BaseException | None, link: Link, assignment: Assignment, tls: ClientTLS | None
) -> SessionEnd:
    if isinstance(error, grpc.aio.AioRpcError) and (
        refusal := certificate_refusal(error, assignment.address, tls)
    ):
        raise TLSError(refusal) from error  # a certificate that does not verify: no retry fixes it
    if isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.UNAUTHENTICATED:
        raise Unauthenticated(
            f"combiner {assignment.combiner} at {assignment.address} refused this client: {error.details()}"
        ) from error
    if isinstance(error, grpc.aio.AioRpcError):
        return SessionEnd(_rpc_error(error), link.established, gone=error.code() in GONE_CODES)
    if isinstance(error, ConnectionLost):
        return SessionEnd(str(error), link.established, gone=False)
    if error is None:  # neither part returns normally; keep the type checker and the reader honest
        return SessionEnd("the connection ended", link.established, gone=False)
    raise error


def _busy(error: grpc.aio.AioRpcError, channel: grpc.aio.Channel) -> bool:
    """A call ran out of time on a connection that is up: the combiner answers slowly, it is not gone."""
    ready = channel.get_state(try_to_connect=False) == grpc.ChannelConnectivity.READY
    return error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and ready


def _rpc_error(error: grpc.aio.AioRpcError) -> str:
    return f"{error.code().name}: {error.details()}"
