"""`scaleout api start`: serve the REST API (and host the controller) with uvicorn."""

from __future__ import annotations

import os

import click

from scaleout.api.settings import ApiSettings
from scaleout.cli.common import log_level_option, storage_options
from scaleout.store.uri import S3Credentials

DEFAULTS = ApiSettings()  # the flags' defaults are the settings' own


@click.group("api")
def api_group() -> None:
    """The REST API under /api/v1 (OpenAPI docs at /docs) and the controller it hosts."""


@api_group.command("start")
@click.option(
    "--host",
    envvar="SCALEOUT_API_HOST",
    default=DEFAULTS.host,
    show_default=True,
    help="Address to listen on; 0.0.0.0 for every interface (env SCALEOUT_API_HOST).",
)
@click.option(
    "--port",
    envvar="SCALEOUT_API_PORT",
    type=click.IntRange(1, 65535),
    default=DEFAULTS.port,
    show_default=True,
    help="Port to listen on (env SCALEOUT_API_PORT).",
)
@storage_options
@click.option(
    "--token",
    envvar="SCALEOUT_API_TOKEN",
    default=None,
    help="Require 'Authorization: Bearer <token>' on /api/v1 (env SCALEOUT_API_TOKEN).",
)
@click.option(
    "--max-upload-bytes",
    envvar="SCALEOUT_API_MAX_UPLOAD_BYTES",
    type=click.IntRange(min=1),
    default=DEFAULTS.max_upload_bytes,
    show_default=True,
    help="Largest package or seed model upload.",
)
@click.option(
    "--lease-seconds",
    envvar="SCALEOUT_API_LEASE_SECONDS",
    type=click.FloatRange(min=1),
    default=DEFAULTS.lease_seconds,
    show_default=True,
    help="Seconds a session's lease lasts unrenewed; another API process on the same statestore "
    "resumes a session whose API died after about this plus 5 s.",
)
@click.option(
    "--sweep-grace",
    envvar="SCALEOUT_API_SWEEP_GRACE",
    type=click.FloatRange(min=0),
    default=DEFAULTS.sweep_grace,
    show_default=True,
    help="Seconds before the hourly repository sweep deletes a model or package file no record names.",
)
@log_level_option
def start(
    host: str,
    port: int,
    db_uri: str,
    models_uri: str,
    token: str | None,
    max_upload_bytes: int,
    lease_seconds: float,
    sweep_grace: float,
    log_level: str,
) -> None:
    """Serve the API until SIGINT/SIGTERM; the stores are opened (and closed) by the app itself."""
    import uvicorn

    from scaleout.api.app import create_app

    settings = ApiSettings(
        host=host,
        port=port,
        db_uri=db_uri,
        models_uri=models_uri,
        token=token or None,
        max_upload_bytes=max_upload_bytes,
        lease_seconds=lease_seconds,
        sweep_grace=sweep_grace,
        s3_credentials=S3Credentials.from_env(os.environ),
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, lifespan="on")
