"""The API's settings: built once by the CLI (flags > SCALEOUT_* environment > defaults) and passed down."""

from dataclasses import dataclass, field

from scaleout.compute_package import DEFAULT_MAX_UNPACKED_BYTES
from scaleout.store.uri import DEFAULT_MODEL_REPOSITORY_URI, DEFAULT_STATESTORE_URI, S3Credentials
from scaleout.tls import ClientTLS

DEFAULT_PORT = 8092
GIB = 1024**3


@dataclass(frozen=True)
class ApiSettings:
    """What the REST API needs to know; library code never reads os.environ."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    db_uri: str = DEFAULT_STATESTORE_URI
    models_uri: str = DEFAULT_MODEL_REPOSITORY_URI
    s3_credentials: S3Credentials | None = None
    # The admin token: with it set, every route follows scaleout/roles.py; without it all are open.
    token: str | None = None
    # The controller's service token on the combiners; None derives it from the admin token.
    controller_token: str | None = None
    # /docs, /redoc and /openapi.json without a token even when the API has one.
    public_docs: bool = False
    # How long a client credential's check is cached: a revocation takes effect within this.
    credential_cache_seconds: float = 5.0
    max_upload_bytes: int = GIB
    # A seed model's arrays, uncompressed (from the npz headers, before inflating anything).
    max_model_bytes: int = GIB
    # What a package may unpack to (it is also at most MAX_EXPANSION times the tarball's size).
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES
    # A combiner heartbeats every registry interval (5 s); three missed ones mean it is gone.
    combiner_online_seconds: float = 15.0
    # The helper clients get when no package is active yet (e.g. they run a local package).
    default_helper: str = "numpyhelper"
    # How the controller it hosts verifies combiners that serve TLS (and its certificate for mutual TLS).
    combiner_tls: ClientTLS = field(default_factory=ClientTLS)
    # Seconds a session's lease lasts unrenewed: another API process resumes a session whose
    # controller died within about this plus 5 s (ControllerSettings.lease_seconds).
    lease_seconds: float = 15.0
    # Seconds before the repository sweep may delete an object no record names.
    sweep_grace: float = 3600.0
