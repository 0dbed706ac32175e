"""`scaleout api start`: serve the REST API (and host the controller) with uvicorn."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from scaleout.api.settings import ApiSettings
from scaleout.cli.common import (
    configure_logging,
    log_format_option,
    log_level_option,
    storage_options,
    stores_of,
)
from scaleout.cli.tls import client_tls_options, server_tls_options
from scaleout.limits import raise_open_files_limit
from scaleout.store.uri import S3Credentials
from scaleout.tls import ClientTLS, ServerTLS, warn_if_exposed

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
    "--work-dir",
    envvar="SCALEOUT_API_WORK_DIR",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Serve the statestore and models of this folder, e.g. one `scaleout local --work-dir` ran in "
    "(its statestore.db and models/); --db and --models still win (env SCALEOUT_API_WORK_DIR).",
)
@click.option(
    "--token",
    envvar="SCALEOUT_API_TOKEN",
    default=None,
    help="The admin token: with it every route needs a credential and follows the roles "
    "(env SCALEOUT_API_TOKEN); without it the API is open.",
)
@click.option(
    "--controller-token",
    envvar="SCALEOUT_CONTROLLER_TOKEN",
    default=None,
    help="The controller's token on the combiners' Control service; give the combiners the same "
    "(env SCALEOUT_CONTROLLER_TOKEN) [default: derived from --token].",
)
@click.option(
    "--public-docs/--no-public-docs",
    envvar="SCALEOUT_API_PUBLIC_DOCS",
    default=DEFAULTS.public_docs,
    show_default=True,
    help="Serve /docs, /redoc and /openapi.json without a token even when --token is set.",
)
@click.option(
    "--max-upload-bytes",
    envvar="SCALEOUT_API_MAX_UPLOAD_BYTES",
    type=click.IntRange(min=1),
    default=DEFAULTS.max_upload_bytes,
    show_default=True,
    help="Largest package or seed model upload.",
)
@server_tls_options(mutual=False)
@client_tls_options
@click.option(
    "--max-model-bytes",
    envvar="SCALEOUT_API_MAX_MODEL_BYTES",
    type=click.IntRange(min=1),
    default=DEFAULTS.max_model_bytes,
    show_default=True,
    help="Largest seed model, uncompressed (read from its npz headers before anything is inflated).",
)
@click.option(
    "--max-unpacked-bytes",
    envvar="SCALEOUT_API_MAX_UNPACKED_BYTES",
    type=click.IntRange(min=1),
    default=DEFAULTS.max_unpacked_bytes,
    show_default=True,
    help="Largest total size a compute package may unpack to (and never over 250x its tarball).",
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
@log_format_option
def start(
    host: str,
    port: int,
    db_uri: str,
    models_uri: str,
    work_dir: Path | None,
    token: str | None,
    controller_token: str | None,
    public_docs: bool,
    max_upload_bytes: int,
    server_tls: ServerTLS | None,
    tls: ClientTLS,
    max_model_bytes: int,
    max_unpacked_bytes: int,
    lease_seconds: float,
    sweep_grace: float,
    log_level: str,
    log_format: str,
) -> None:
    """Serve the API until SIGINT/SIGTERM; the stores are opened (and closed) by the app itself.

    With --tls-cert/--tls-key it serves https. --tls-ca and --tls-client-cert/--tls-client-key are
    how the controller it hosts verifies combiners that serve TLS and proves itself to them.
    """
    import uvicorn

    from scaleout.api.app import create_app

    db_uri, models_uri = stores_of(work_dir, db_uri, models_uri)
    settings = ApiSettings(
        host=host,
        port=port,
        db_uri=db_uri,
        models_uri=models_uri,
        token=token or None,
        controller_token=controller_token or None,
        public_docs=public_docs,
        max_upload_bytes=max_upload_bytes,
        max_model_bytes=max_model_bytes,
        max_unpacked_bytes=max_unpacked_bytes,
        lease_seconds=lease_seconds,
        sweep_grace=sweep_grace,
        s3_credentials=S3Credentials.from_env(os.environ),
        combiner_tls=tls,
    )
    ssl = {} if server_tls is None else {"ssl_certfile": server_tls.cert, "ssl_keyfile": server_tls.key}
    if server_tls is None:
        warn_if_exposed(logging.getLogger("scaleout.api"), "the API", host, port)
    logging_config = {}
    if log_format == "json":  # uvicorn's loggers then propagate to our JSON handler on the root logger
        configure_logging(log_level, log_format)
        logging_config = {"log_config": None}
    raise_open_files_limit("API")  # a socket per client asking for a combiner or a package at once
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        **ssl,
        **logging_config,
    )
