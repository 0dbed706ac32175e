"""The combiner process: one grpc.aio server on one event loop serving clients and the controller.

No thread per stream: thousands of open task streams are coroutines. Blocking work (statestore,
model repository, file I/O, numpy folds) runs in worker threads via ``asyncio.to_thread``. The
combiner registers itself in the statestore every ``registry_interval`` and, when stopped, marks itself
and its clients offline. grpc.health.v1 (combiner/health.py) says SERVING from registration to
shutdown; Prometheus metrics (combiner/metrics.py) are served on ``metrics_port`` when it is set.
"""

import asyncio
import contextlib
import logging
import signal
from datetime import UTC, datetime

import grpc

from scaleout.combiner.admission import TransferAdmission
from scaleout.combiner.auth import AuthInterceptor, RevocationWatcher
from scaleout.combiner.clients import ClientRegistry
from scaleout.combiner.control import ControlServicer
from scaleout.combiner.health import CombinerHealth
from scaleout.combiner.logcontext import LogContextInterceptor
from scaleout.combiner.malloc import limit_malloc_arenas
from scaleout.combiner.metrics import MetricsInterceptor, MetricsServer, RegistryCollector, TransferCollector
from scaleout.combiner.modelservice import ModelServicer, add_model_service
from scaleout.combiner.polling import Pollers
from scaleout.combiner.ratelimit import RateLimiter
from scaleout.combiner.rounds import RoundHandler
from scaleout.combiner.servicer import CombinerClientServicer
from scaleout.combiner.settings import CombinerSettings
from scaleout.combiner.spool import UpdateSpool
from scaleout.combiner.staging import StagedModels
from scaleout.combiner.telemetry import Telemetry
from scaleout.credentials import Authenticator, controller_token
from scaleout.limits import raise_open_files_limit
from scaleout.metrics import TimedStatestore
from scaleout.proto import scaleout_pb2_grpc as rpc
from scaleout.proto.channels import server_credentials
from scaleout.store import open_model_repository, open_statestore
from scaleout.store.entities import Combiner as CombinerRecord
from scaleout.store.entities import NodeStatus
from scaleout.store.repository import ModelRepository
from scaleout.store.statestore import Statestore
from scaleout.tls import warn_if_exposed

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 64 * 1024 * 1024  # chunks are up to 4 MiB; the default 4 MiB limit rejects 4 MiB + framing
UNREQUESTED_CALL_BOUND = 3600  # seconds; far beyond any call's deadline (see SERVER_OPTIONS)
# Calls gRPC may hold for the event loop to pick up (see SERVER_OPTIONS): ~20 per client of 5,000, each
# a few KB of headers until its handler runs, and each bounded in time by its client's deadline.
MAX_PENDING_CALLS = 100_000
STOP_GRACE = 5.0  # seconds in-flight RPCs get at shutdown before they are cancelled
SERVER_OPTIONS = [
    ("grpc.max_send_message_length", MESSAGE_LIMIT),
    ("grpc.max_receive_message_length", MESSAGE_LIMIT),
    # Keepalive pings (keepalive_options) go out whether or not data flows; clients ping every >= 5 s
    # (client/settings.py bounds their keepalive_time to that).
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
    # A ping sooner than that is never a reason to drop a client: a client's BDP probe pings as
    # model bytes arrive, and when this event loop is slow to send (hundreds of clients in a round) the
    # pings came "too soon" after the last data: gRPC's default of 2 strikes then closed ~450 of 1,000
    # swarm clients' connections with GOAWAY "too_many_pings", mid-round. Pings cost C-core, not the loop.
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.so_reuseport", 0),  # a port in use is an error, not a silently shared port
    # A call the event loop has not yet picked up is cancelled after this long, with no handler run and
    # nothing logged (gRPC's default is 30 s): under a burst of thousands of calls a SendModelUpdate
    # could vanish so. Each call's own deadline (the client's rpc_deadline) bounds its wait instead.
    ("grpc.server_max_unrequested_time_in_server", UNREQUESTED_CALL_BOUND),
    # Nor by number: past 1,000 calls waiting for the loop gRPC cancels arriving calls at random (all
    # past 3,000), and the client sees a bare CANCELLED. At 2,000 clients a connect storm (a task
    # stream and a heartbeat each) or a round (downloads, uploads, updates) queues that many while the
    # loop is busy: 8-30 % of their task streams, heartbeats and downloads ended so, and the round
    # never had every update.
    ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
    ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_CALLS),
]


def flow_control_options(upload_window: int) -> list[tuple[str, int]]:
    """HTTP/2 receive windows of the upload streams: an upload moves at most one window per round trip.

    ``upload_window`` > 0 fixes every stream's window at that many bytes: an upload then holds at most
    ~3 chunks here (the window, the message being written, its copy) whatever the network, at the price
    of speed on long links (1 MiB: ~20 MB/s per upload at 50 ms). 0 lets gRPC's BDP probing grow each
    window to the link's bandwidth-delay product, so one upload fills a long fat link; on a fast local
    network a window may then grow to >= 4 MiB, held per upload the event loop has not read yet (~15 MB
    per concurrent upload was measured at 100 MB on loopback).
    """
    if upload_window == 0:
        return [("grpc.http2.bdp_probe", 1)]
    return [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", upload_window)]


def keepalive_options(keepalive_time: float, keepalive_timeout: float) -> list[tuple[str, int]]:
    """HTTP/2 keepalive on client connections: how a hung client is noticed, its task stream closed.

    gRPC C-core pings a connection once nothing was read from it for ``keepalive_time`` and closes it
    when no ack comes within ``grpc.http2.ping_timeout_ms``. That option, not ``keepalive_timeout_ms``,
    bounds a keepalive ping here (grpc 1.85, measured): left out it is 60 s, which is why the former
    settings (20 s + "10 s") noticed a SIGSTOPped client after ~80 s. Both are set, so a hang is
    noticed within ``keepalive_time + keepalive_timeout`` (default 10 + 5: measured 14.5 s,
    benchmarks/liveness_bench.py); a killed client at once, as its kernel resets the connection.
    The cost is one ping and ack per idle connection per ``keepalive_time``, in C-core threads, not an
    RPC on the event loop: 1,000 idle client connections took 0.4 % of a core at 10 s (0.1 % without
    pings) and 2 % at 2 s (500 pings/s), so 5,000 idle clients at the default cost ~2 %.
    """
    timeout_ms = round(keepalive_timeout * 1000)
    return [
        ("grpc.keepalive_time_ms", round(keepalive_time * 1000)),
        ("grpc.keepalive_timeout_ms", timeout_ms),
        ("grpc.http2.ping_timeout_ms", timeout_ms),
    ]


class Combiner:
    """The combiner app: servicers, client registry, round handler, registration."""

    def __init__(
        self, settings: CombinerSettings, statestore: Statestore, repository: ModelRepository
    ) -> None:
        self.settings = settings
        self.statestore = statestore
        self.repository = repository
        self.port = settings.port
        work_dir = settings.work_dir
        self.registry = ClientRegistry(
            statestore, settings.name, settings.heartbeat_timeout, settings.client_write_interval
        )
        self.staged = StagedModels(repository, work_dir / "models")
        self.spool = UpdateSpool(work_dir / "updates", settings.max_model_size)
        self.admission = TransferAdmission(settings.max_transfers)
        self.rounds = RoundHandler(
            settings.name,
            self.registry,
            self.staged,
            self.spool,
            statestore,
            repository,
            work_dir,
            max_num_examples=settings.max_num_examples,
        )
        self.pollers = Pollers(self.registry, self.rounds, settings.poll_online_seconds)
        self.telemetry = Telemetry(statestore)
        self.auth = _authenticator(settings, statestore)
        self._revocations = (
            RevocationWatcher(statestore, self.auth, self.registry, settings.credential_refresh)
            if self.auth is not None
            else None
        )
        self.health = CombinerHealth()
        self.metrics: MetricsServer | None = None
        self._server: grpc.aio.Server | None = None
        self._stopping = asyncio.Event()
        self._registration: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind, serve, and register; ``self.port`` is the bound port (settings.port 0 picks a free one)."""
        auth = [AuthInterceptor(self.auth, _rate_limiter(self.settings))] if self.auth else []
        interceptors = [*auth, MetricsInterceptor(), LogContextInterceptor()]  # refused calls go uncounted
        keepalive = keepalive_options(self.settings.keepalive_time, self.settings.keepalive_timeout)
        options = [*SERVER_OPTIONS, *flow_control_options(self.settings.upload_window), *keepalive]
        server = grpc.aio.server(options=options, interceptors=interceptors)
        rpc.add_CombinerClientServicer_to_server(
            CombinerClientServicer(self.registry, self.rounds, self.pollers, self.telemetry), server
        )
        add_model_service(ModelServicer(self.staged, self.spool, self.admission), server)
        rpc.add_ControlServicer_to_server(
            ControlServicer(self.settings.name, self.registry, self.rounds), server
        )
        await self.health.not_serving()
        self.health.add_to(server)
        address = f"{self.settings.host}:{self.settings.port}"
        try:
            if self.settings.tls is None:
                self.port = server.add_insecure_port(address)
                warn_if_exposed(log, f"combiner {self.settings.name}", self.settings.host, self.port)
            else:
                self.port = server.add_secure_port(address, server_credentials(self.settings.tls))
        except RuntimeError as error:
            raise OSError(f"combiner cannot listen on {address}: {error}; is the port in use?") from error
        await server.start()
        self._server = server
        self.registry.start()
        if self._revocations is not None:
            self._revocations.start()
        await self._register(NodeStatus.ONLINE)
        self._registration = asyncio.create_task(self._registration_loop(), name="combiner-registration")
        if self.settings.metrics_port is not None:
            collectors = [RegistryCollector(self.registry), TransferCollector(self.admission, self.spool)]
            self.metrics = MetricsServer(collectors, self.settings.host, self.settings.metrics_port)
        await self.health.serving()
        log.info(
            "combiner %s serving on %s:%d (advertised as %s)",
            self.settings.name,
            self.settings.host,
            self.port,
            self.settings.address,
        )

    async def stop(self) -> None:
        """Stop taking RPCs, end task streams, and mark the combiner and its clients offline."""
        self._stopping.set()
        await self.health.draining()
        if self._registration is not None:
            self._registration.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._registration
        if self._revocations is not None:
            await self._revocations.stop()
        stopped = asyncio.create_task(self._server.stop(STOP_GRACE)) if self._server else None
        self.pollers.close()
        await self.registry.close()  # ends every task stream, so the server need not wait out the grace
        if stopped is not None:
            await stopped
        if self._registration is not None:  # registered at start: say we are gone
            try:
                await self._register(NodeStatus.OFFLINE)
            except Exception:
                log.exception("marking combiner %s offline in the statestore failed", self.settings.name)
        if self.metrics is not None:
            self.metrics.stop()
        log.info("combiner %s stopped", self.settings.name)

    async def wait_for_termination(self) -> None:
        await self._stopping.wait()

    def request_stop(self) -> None:
        self._stopping.set()

    async def _registration_loop(self) -> None:
        """Refresh the Combiner record every registry_interval: that is how the controller sees it alive."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.registry_interval)
            if self._stopping.is_set():
                return
            try:
                await self._register(NodeStatus.ONLINE)
            except Exception:  # a store outage: log and retry at the next interval
                log.exception("registering combiner %s in the statestore failed", self.settings.name)

    async def _register(self, status: NodeStatus) -> None:
        record = CombinerRecord(
            id=self.settings.name,
            name=self.settings.name,
            address=self.settings.address,
            port=self.port,
            status=status,
            last_seen=datetime.now(UTC),
            client_count=len(self.registry.online()),
            tls=self.settings.tls is not None,
        )
        await asyncio.to_thread(self.statestore.combiners.upsert, record)


def _authenticator(settings: CombinerSettings, statestore: Statestore) -> Authenticator | None:
    """Who a call's token belongs to; None (every RPC open) when neither token is configured."""
    controller = controller_token(settings.token, settings.controller_token)
    if not settings.token and not controller:
        return None
    return Authenticator(statestore, settings.token, controller, settings.credential_refresh)


def _rate_limiter(settings: CombinerSettings) -> RateLimiter | None:
    if settings.client_rate_limit <= 0:
        return None
    return RateLimiter(settings.client_rate_limit, settings.client_burst)


async def serve(settings: CombinerSettings) -> None:
    """Run a combiner until SIGINT or SIGTERM, then shut it down gracefully."""
    limit_malloc_arenas()  # before the first worker thread allocates
    raise_open_files_limit(f"combiner {settings.name}")  # a socket per connected client
    statestore = TimedStatestore(await asyncio.to_thread(open_statestore, settings.db))
    repository = await asyncio.to_thread(open_model_repository, settings.models, settings.s3_credentials)
    combiner = Combiner(settings, statestore, repository)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, combiner.request_stop)
    try:
        await combiner.start()
        await combiner.wait_for_termination()
    finally:
        await combiner.stop()
        await asyncio.to_thread(statestore.close)
