"""The combiner's settings: built once by the CLI (flags > SCALEOUT_* environment > defaults), passed down."""

import socket
from dataclasses import dataclass
from pathlib import Path

from scaleout.store.uri import DEFAULT_MODEL_REPOSITORY_URI, DEFAULT_STATESTORE_URI, S3Credentials

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
    registry_interval: float = 5.0
    work_dir: Path = Path(".scaleout/combiner")
    max_model_size: int = 2 * GIB
    # Largest num_examples one update may claim: keeps one client from taking all of an average's weight.
    max_num_examples: int = 10**9
    s3_credentials: S3Credentials | None = None
    # The shared token (the API's): when set, every RPC must carry `authorization: Bearer <token>`.
    token: str | None = None
    # Client records are rewritten on heartbeats at most this often (connects/disconnects always).
    client_write_interval: float = 5.0

    @property
    def address(self) -> str:
        """The host clients are told to dial: a wildcard bind address is no address to dial."""
        if self.advertise_host:
            return self.advertise_host
        if self.host in ("0.0.0.0", "::", "[::]", ""):
            return socket.gethostname()
        return self.host
