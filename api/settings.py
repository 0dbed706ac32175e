"""The API's settings: built once by the CLI (flags > SCALEOUT_* environment > defaults) and passed down."""

from dataclasses import dataclass

from scaleout.store.uri import DEFAULT_MODEL_REPOSITORY_URI, DEFAULT_STATESTORE_URI, S3Credentials

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
    token: str | None = None
    max_upload_bytes: int = GIB
    # A combiner heartbeats every registry interval (5 s); three missed ones mean it is gone.
    combiner_online_seconds: float = 15.0
    # The helper clients get when no package is active yet (e.g. they run a local package).
    default_helper: str = "numpyhelper"
    # Seconds a session's lease lasts unrenewed: another API process resumes a session whose
    # controller died within about this plus 5 s (ControllerSettings.lease_seconds).
    lease_seconds: float = 15.0
    # Seconds before the repository sweep may delete an object no record names.
    sweep_grace: float = 3600.0
