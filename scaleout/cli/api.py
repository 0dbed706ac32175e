"""`scaleout api start`: serve the REST API (and host the controller) with uvicorn."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote

import click

from scaleout.api.settings import DEFAULT_DB, DEFAULT_MODELS, DEFAULT_PORT, GIB, ApiSettings
from scaleout.store.uri import S3Credentials


@click.group("api")
def api_group() -> None:
    """The REST API under /api/v1 (OpenAPI docs at /docs) and the controller it hosts."""


@api_group.command("start")
@click.option(
    "--host",
    envvar="SCALEOUT_API_HOST",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 for every interface (env SCALEOUT_API_HOST).",
)
@click.option(
    "--port",
    envvar="SCALEOUT_API_PORT",
    type=click.IntRange(1, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on (env SCALEOUT_API_PORT).",
)
@click.option(
    "--db",
    "db_uri",
    envvar="SCALEOUT_DB",
    default=DEFAULT_DB,
    show_default=True,
    help="Statestore URI: sqlite:///path or mongodb://host:port/database (env SCALEOUT_DB).",
)
@click.option(
    "--models",
    "models_uri",
    envvar="SCALEOUT_MODELS",
    default=DEFAULT_MODELS,
    show_default=True,
    help="Model repository URI: file://path or s3://bucket?endpoint=host:port (env SCALEOUT_MODELS).",
)
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
    default=GIB,
    show_default=True,
    help="Largest package or seed model upload.",
)
@click.option(
    "--log-level",
    envvar="SCALEOUT_LOG_LEVEL",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
def start(
    host: str,
    port: int,
    db_uri: str,
    models_uri: str,
    token: str | None,
    max_upload_bytes: int,
    log_level: str,
) -> None:
    """Serve the API until SIGINT/SIGTERM; the stores are opened (and closed) by the app itself."""
    import uvicorn

    from scaleout.api.app import create_app

    _make_sqlite_dir(db_uri)
    settings = ApiSettings(
        host=host,
        port=port,
        db_uri=db_uri,
        models_uri=models_uri,
        token=token or None,
        max_upload_bytes=max_upload_bytes,
        s3_credentials=S3Credentials.from_env(os.environ),
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, lifespan="on")


def _make_sqlite_dir(db_uri: str) -> None:
    """SQLite creates the file, not its folder; the default lives in ./.scaleout/."""
    if db_uri.startswith("sqlite:///") and not db_uri.endswith(":memory:"):
        Path(unquote(db_uri[len("sqlite:///") :])).parent.mkdir(parents=True, exist_ok=True)
