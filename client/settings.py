"""The edge client's settings, built once by the CLI (flags > environment > defaults) and passed down.

Also the client's identity: a client keeps one id for its whole life, so that the combiner and the
statestore see a restarted client as the same client. Without ``--client-id`` the id is generated
once and kept in the work dir.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from scaleout.compute_package import DEFAULT_MAX_UNPACKED_BYTES
from scaleout.errors import InvalidId
from scaleout.tls import ClientTLS

DEFAULT_API_URL = "http://localhost:8092"
CLIENT_ID_FILE = "client_id"
# The combiner's grpc.http2.min_recv_ping_interval_without_data_ms (combiner/server.py SERVER_OPTIONS).
MIN_KEEPALIVE_TIME = 5.0
# The model repository's id rule (store/repository.py): the id names files and object keys there.
_VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,200}")


@dataclass(frozen=True)
class ClientSettings:
    """Everything an EdgeClient needs; the defaults are the CLI's.

    ``assign_timeout`` None waits for an assignment forever (logging each retry);
    ``reconnect_attempts`` failed connections to the assigned combiner make the client ask the API
    again; ``task_timeout`` None lets an entry point run as long as it needs.

    Every call to the combiner has a deadline: ``rpc_deadline`` for the small ones (SendModelUpdate,
    SendStatus, SendModelValidation), and for a model transfer ``rpc_deadline`` plus its bytes over
    ``min_transfer_rate`` (a Download, whose size is not known up front, must keep that pace as it
    goes, from the combiner's admission on; a transfer waits up to ``max_queue_wait`` to be admitted, as
    a combiner moves at most its max_transfers models at once). HTTP/2 keepalive pings the combiner
    after ``keepalive_time`` s with nothing received and drops the connection, failing every call on
    it, when no ack comes within ``keepalive_timeout``.
    """

    api_url: str = DEFAULT_API_URL
    work_dir: Path = Path(".scaleout/client")
    name: str | None = None
    client_id: str | None = None
    local_package: Path | None = None
    token: str | None = None
    # Without a token: exchanged once for a credential of this client's own, kept in the work dir.
    enroll_secret: str | None = None
    # Liveness is the open task stream plus HTTP/2 keepalive; heartbeats only show the combiner's event
    # loop answers, so they are infrequent: 1,000 clients at 30 s are 33 calls/s on the combiner.
    heartbeat_interval: float = 30.0
    # How long one heartbeat may take before it counts as missed (HEARTBEAT_MISSES in a row end the
    # connection; a first one missed on a connection that is up counts as a miss too: a busy combiner).
    heartbeat_deadline: float = 10.0
    env_dir: Path | None = None
    assign_timeout: float | None = None
    task_timeout: float | None = None
    reconnect_attempts: int = 3
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    # Upload chunks: the combiner holds ~2 of them per open upload until written, so 1 MiB (the low end
    # of the wire contract) keeps 16 concurrent uploads at ~50 MB there, at the same speed as 2 MiB.
    chunk_size: int = 1024 * 1024
    # How an https API and combiners that serve TLS are verified, and the certificate for mutual TLS.
    tls: ClientTLS = field(default_factory=ClientTLS)
    rpc_deadline: float = 30.0
    min_transfer_rate: float = 250_000.0  # bytes/s: 2 Mbit/s, a slow edge link
    # A round's transfers queue at the combiner (its max_transfers): at 5,000 clients of a 1 MB model many
    # waited over 47 s there.
    max_queue_wait: float = 300.0
    keepalive_time: float = 10.0
    keepalive_timeout: float = 5.0
    # The total a downloaded package may unpack to; keep it >= the API's --max-unpacked-bytes.
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES

    def __post_init__(self) -> None:
        if min(self.rpc_deadline, self.min_transfer_rate, self.max_queue_wait, self.keepalive_timeout) <= 0:
            raise ValueError(
                "rpc_deadline, min_transfer_rate, max_queue_wait and keepalive_timeout must be > 0, got "
                f"{self.rpc_deadline}, {self.min_transfer_rate}, {self.max_queue_wait} and "
                f"{self.keepalive_timeout}"
            )
        if self.keepalive_time < MIN_KEEPALIVE_TIME:
            raise ValueError(
                f"keepalive_time must be >= {MIN_KEEPALIVE_TIME:g} s, the least interval at which combiners "
                "expect an idle client's pings (they tolerate sooner ones, but the pings of every client "
                f"load the combiner); set it to {MIN_KEEPALIVE_TIME:g} or more, got {self.keepalive_time:g}"
            )
        if self.heartbeat_interval <= 0 or self.heartbeat_deadline <= 0:
            raise ValueError(
                "heartbeat_interval and heartbeat_deadline must be > 0 seconds, got "
                f"{self.heartbeat_interval} and {self.heartbeat_deadline}"
            )
        if self.reconnect_attempts < 1:
            raise ValueError(f"reconnect_attempts must be >= 1, got {self.reconnect_attempts}")
        if not 1024 * 1024 <= self.chunk_size <= 4 * 1024 * 1024:
            raise ValueError(f"chunk_size must be 1-4 MiB (the wire contract), got {self.chunk_size}")


def validate_client_id(client_id: str) -> str:
    """Return the id if the combiner and the stores can use it as a key; raise InvalidId otherwise."""
    if not _VALID_ID.fullmatch(client_id) or client_id in {".", ".."}:
        raise InvalidId(
            f"invalid client id {client_id!r}: use 1-200 characters from A-Z a-z 0-9 . _ - "
            "(or leave --client-id out to get a generated one)"
        )
    return client_id


def resolve_client_id(work_dir: Path, given: str | None) -> str:
    """The given id, else the one kept in ``work_dir``, else a new uuid hex written there."""
    if given:
        return validate_client_id(given)
    path = work_dir / CLIENT_ID_FILE
    if path.is_file():
        stored = path.read_text(encoding="utf-8").strip()
        try:
            return validate_client_id(stored)
        except InvalidId as exc:
            raise InvalidId(f"{path} holds {exc}; delete the file to get a new id") from exc
    client_id = uuid.uuid4().hex
    work_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(client_id + "\n", encoding="utf-8")
    return client_id
