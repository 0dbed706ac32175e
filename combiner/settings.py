"""The combiner's settings: built once by the CLI (flags > SCALEOUT_* environment > defaults), passed down."""

import socket
from dataclasses import dataclass
from pathlib import Path

from scaleout.store.uri import DEFAULT_MODEL_REPOSITORY_URI, DEFAULT_STATESTORE_URI, S3Credentials
from scaleout.tls import ServerTLS

GIB = 1024**3


@dataclass(frozen=True)
class CombinerSettings:
    """Everything `scaleout combiner start` configures; library code reads no environment."""

    host: str = "127.0.0.1"
    port: int = 12080
    name: str = "combiner"
    db: str = DEFAULT_STATESTORE_URI
    models: str = DEFAULT_MODEL_REPOSITORY_URI
    advertise_host: str | None = None
    heartbeat_timeout: float = 30.0
    # A polling client (the official one: PollAndReportAsync every 5 s) is online this long after a poll.
    poll_online_seconds: float = 30.0
    registry_interval: float = 5.0
    work_dir: Path = Path(".scaleout/combiner")
    max_model_size: int = 2 * GIB
    # Model transfers (downloads and uploads) moving bytes at once; the others wait their turn. Each holds
    # ~3 MB (a 1 MiB chunk in copies, or an upload's window), so this bounds transfer memory (~200 MB)
    # whatever the number of clients.
    max_transfers: int = 64
    # HTTP/2 receive window of each upload, bytes; 0 follows each link's bandwidth-delay product
    # (server.flow_control_options): one 100 MB upload at 50 ms RTT went from 21.5 to 45.2 MB/s on a
    # 50 MB/s link, but held ~5 MB more per concurrent upload on loopback (a robust round of 16 clients
    # at 100 MB: 428 MB peak RSS against 345 MB). The fixed 1 MiB window keeps the combiner's memory
    # bounded by the model whatever the clients; combiners behind long fat links set 0.
    upload_window: int = 1024 * 1024
    # Largest num_examples one update may claim: keeps one client from taking all of an average's weight.
    max_num_examples: int = 10**9
    s3_credentials: S3Credentials | None = None
    # The admin token (the API's). With it or a controller token set, every RPC needs a credential
    # and follows scaleout/roles.py; with neither, every RPC is open.
    token: str | None = None
    # The controller's service token, the only one Control.StartRound takes; None derives it from token.
    controller_token: str | None = None
    # Per-client-credential rate limit on the client services: calls per second and burst; 0 disables.
    client_rate_limit: float = 50.0
    client_burst: int = 500
    # Client credential checks are cached this long, and revocations looked up this often.
    credential_refresh: float = 5.0
    # Client records are rewritten on heartbeats at most this often (connects/disconnects always): idle
    # clients then cost 0.2 statestore writes per client per minute (5,000 clients: 17 writes/s; at one a
    # minute they measured 86 writes/s, 1.03 a client, over the bound). A connected client's
    # record needs no refresh: its status says it is online, and only the dashboard shows last_seen.
    client_write_interval: float = 300.0
    # TLS for every gRPC service (None: plaintext, for loopback); recorded so clients dial accordingly.
    tls: ServerTLS | None = None
    # HTTP/2 keepalive on client connections: a hung client is noticed within their sum (server.py).
    keepalive_time: float = 10.0
    keepalive_timeout: float = 5.0
    # Prometheus metrics over HTTP on this port (0: a free one), on the gRPC host; None: not served.
    metrics_port: int | None = None

    def __post_init__(self) -> None:
        for name in ("keepalive_time", "keepalive_timeout"):
            value = getattr(self, name)
            if not 0.001 <= value <= 86_400:
                raise ValueError(f"{name} must be 0.001-86400 seconds, got {value}")

    @property
    def address(self) -> str:
        """The host clients are told to dial: a wildcard bind address is no address to dial."""
        if self.advertise_host:
            return self.advertise_host
        if self.host in ("0.0.0.0", "::", "[::]", ""):
            return socket.gethostname()
        return self.host
