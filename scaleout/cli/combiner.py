"""`scaleout combiner start` runs a combiner; `scaleout combiner health` asks one if it is serving;
`scaleout combiner list` shows those registered with the API."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from scaleout.cli.common import (
    configure_logging,
    log_format_option,
    log_level_option,
    storage_options,
    stores_of,
    user_errors,
)
from scaleout.cli.remote import Remote, api_options
from scaleout.cli.tables import ALWAYS, Column, field, print_records, when
from scaleout.cli.tls import client_tls_options, server_tls_options
from scaleout.combiner.settings import CombinerSettings
from scaleout.store.uri import S3Credentials
from scaleout.tls import ClientTLS, ServerTLS

# The settings' defaults are the flags' defaults: one definition of each.
DEFAULTS = CombinerSettings()


@click.group("combiner")
def combiner_group() -> None:
    """The combiner: serves clients over gRPC, runs rounds and aggregates their updates."""


@combiner_group.command("start")
@click.option(
    "--host",
    envvar="SCALEOUT_COMBINER_HOST",
    default=DEFAULTS.host,
    show_default=True,
    help="Address to listen on; 0.0.0.0 for every interface (env SCALEOUT_COMBINER_HOST).",
)
@click.option(
    "--port",
    envvar="SCALEOUT_COMBINER_PORT",
    type=click.IntRange(1, 65535),
    default=DEFAULTS.port,
    show_default=True,
    help="gRPC port (env SCALEOUT_COMBINER_PORT).",
)
@click.option(
    "--name",
    envvar="SCALEOUT_COMBINER_NAME",
    default=DEFAULTS.name,
    show_default=True,
    help="The combiner's name, also its id in the statestore (env SCALEOUT_COMBINER_NAME).",
)
@storage_options
@click.option(
    "--advertise-host",
    envvar="SCALEOUT_COMBINER_ADVERTISE_HOST",
    default=None,
    help="Host clients dial, if not --host (default: --host, or the hostname for 0.0.0.0).",
)
@click.option(
    "--heartbeat-timeout",
    envvar="SCALEOUT_COMBINER_HEARTBEAT_TIMEOUT",
    type=click.FloatRange(min=0.01),
    default=DEFAULTS.heartbeat_timeout,
    show_default=True,
    help="Seconds without task stream and heartbeat after which a client is offline.",
)
@click.option(
    "--poll-online-seconds",
    envvar="SCALEOUT_COMBINER_POLL_ONLINE_SECONDS",
    type=click.FloatRange(min=0.01, max=86_400),
    default=DEFAULTS.poll_online_seconds,
    show_default=True,
    help=(
        "Seconds a polling client (the official Scaleout Edge client) stays online after its last poll "
        "(or three of the poll intervals it reports, if longer)."
    ),
)
@click.option(
    "--keepalive-time",
    envvar="SCALEOUT_COMBINER_KEEPALIVE_TIME",
    type=click.FloatRange(min=0.001, max=86_400),
    default=DEFAULTS.keepalive_time,
    show_default=True,
    help="Seconds without a byte from a client before an HTTP/2 ping checks its connection.",
)
@click.option(
    "--keepalive-timeout",
    envvar="SCALEOUT_COMBINER_KEEPALIVE_TIMEOUT",
    type=click.FloatRange(min=0.001, max=86_400),
    default=DEFAULTS.keepalive_timeout,
    show_default=True,
    help="Seconds the ping's answer may take; a hung client leaves its round within both together.",
)
@click.option(
    "--registry-interval",
    envvar="SCALEOUT_COMBINER_REGISTRY_INTERVAL",
    type=click.FloatRange(min=0.01),
    default=DEFAULTS.registry_interval,
    show_default=True,
    help="Seconds between refreshes of the combiner's record in the statestore.",
)
@click.option(
    "--work-dir",
    envvar="SCALEOUT_COMBINER_WORK_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The folder of its stores, as `scaleout local --work-dir` lays it out (statestore.db and "
    "models/, unless --db/--models are given), and of its staged models and spooled updates "
    "(DIR/combiner/NAME) [default: .scaleout].",
)
@click.option(
    "--max-model-size",
    envvar="SCALEOUT_COMBINER_MAX_MODEL_SIZE",
    type=click.IntRange(min=1),
    default=DEFAULTS.max_model_size,
    show_default=True,
    help="Largest model update accepted, in bytes.",
)
@click.option(
    "--max-transfers",
    envvar="SCALEOUT_COMBINER_MAX_TRANSFERS",
    type=click.IntRange(min=1),
    default=DEFAULTS.max_transfers,
    show_default=True,
    help="Model transfers (downloads, uploads) moving bytes at once; the others wait (bounds memory).",
)
@click.option(
    "--upload-window",
    envvar="SCALEOUT_COMBINER_UPLOAD_WINDOW",
    type=click.IntRange(min=0, max=2**31 - 1),
    default=DEFAULTS.upload_window,
    show_default=True,
    help="HTTP/2 window of each upload in bytes (an upload moves one window per round trip); "
    "0: follow each link's bandwidth-delay product.",
)
@click.option(
    "--max-num-examples",
    envvar="SCALEOUT_COMBINER_MAX_NUM_EXAMPLES",
    type=click.IntRange(min=1, max=2**53),
    default=DEFAULTS.max_num_examples,
    show_default=True,
    help="Largest num_examples one update may claim; updates above it are rejected.",
)
@click.option(
    "--token",
    envvar="SCALEOUT_API_TOKEN",
    help="The admin token (env SCALEOUT_API_TOKEN, as `scaleout api start --token`): with it or "
    "--controller-token, every gRPC call needs a credential and follows the roles.",
)
@click.option(
    "--controller-token",
    envvar="SCALEOUT_CONTROLLER_TOKEN",
    help="The only token Control.StartRound takes: the API's --controller-token "
    "(env SCALEOUT_CONTROLLER_TOKEN) [default: derived from --token].",
)
@click.option(
    "--client-rate-limit",
    envvar="SCALEOUT_COMBINER_CLIENT_RATE_LIMIT",
    type=click.FloatRange(min=0),
    default=DEFAULTS.client_rate_limit,
    show_default=True,
    help="Calls per second one client credential may make to the client services; 0: no limit.",
)
@click.option(
    "--client-burst",
    envvar="SCALEOUT_COMBINER_CLIENT_BURST",
    type=click.IntRange(min=1),
    default=DEFAULTS.client_burst,
    show_default=True,
    help="Calls a client credential may make at once above its rate.",
)
@click.option(
    "--credential-refresh",
    envvar="SCALEOUT_COMBINER_CREDENTIAL_REFRESH",
    type=click.FloatRange(min=0.1),
    default=DEFAULTS.credential_refresh,
    show_default=True,
    help="Seconds a client credential check is cached and between looks for revoked ones.",
)
@click.option(
    "--metrics-port",
    envvar="SCALEOUT_COMBINER_METRICS_PORT",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics over HTTP at /metrics on this port, on --host (default: not served).",
)
@server_tls_options(mutual=True)
@log_level_option
@log_format_option
def start(
    host: str,
    port: int,
    name: str,
    db_uri: str,
    models_uri: str,
    advertise_host: str | None,
    heartbeat_timeout: float,
    poll_online_seconds: float,
    keepalive_time: float,
    keepalive_timeout: float,
    registry_interval: float,
    work_dir: Path | None,
    max_model_size: int,
    max_transfers: int,
    upload_window: int,
    max_num_examples: int,
    token: str | None,
    controller_token: str | None,
    client_rate_limit: float,
    client_burst: int,
    credential_refresh: float,
    metrics_port: int | None,
    server_tls: ServerTLS | None,
    log_level: str,
    log_format: str,
) -> None:
    """Serve clients and the controller until SIGINT/SIGTERM, then mark this combiner offline.

    With --tls-cert/--tls-key every gRPC service is TLS, and the combiner's record says so, so that
    clients and the controller dial it with TLS.
    """
    import asyncio

    from scaleout.combiner.server import serve
    from scaleout.store import validate_id

    configure_logging(log_level, log_format)
    db_uri, models_uri = stores_of(work_dir, db_uri, models_uri)
    with user_errors():
        validate_id(name)  # the name is the combiner's id and names its work folder
        settings = CombinerSettings(
            host=host,
            port=port,
            name=name,
            db=db_uri,
            models=models_uri,
            advertise_host=advertise_host or None,
            heartbeat_timeout=heartbeat_timeout,
            poll_online_seconds=poll_online_seconds,
            keepalive_time=keepalive_time,
            keepalive_timeout=keepalive_timeout,
            registry_interval=registry_interval,
            work_dir=(work_dir or Path(".scaleout")) / "combiner" / name,
            max_model_size=max_model_size,
            max_transfers=max_transfers,
            upload_window=upload_window,
            max_num_examples=max_num_examples,
            s3_credentials=S3Credentials.from_env(os.environ),
            token=token or None,
            controller_token=controller_token or None,
            client_rate_limit=client_rate_limit,
            client_burst=client_burst,
            credential_refresh=credential_refresh,
            tls=server_tls,
            metrics_port=metrics_port,
        )
        try:
            asyncio.run(serve(settings))
        except OSError as error:
            raise click.ClickException(str(error)) from error


@combiner_group.command("health")
@click.option("--host", envvar="SCALEOUT_COMBINER_HOST", default=DEFAULTS.host, show_default=True)
@click.option(
    "--port",
    envvar="SCALEOUT_COMBINER_PORT",
    type=click.IntRange(1, 65535),
    default=DEFAULTS.port,
    show_default=True,
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.01),
    default=5.0,
    show_default=True,
    help="Seconds to wait for the answer.",
)
@click.option(
    "--token",
    envvar=["SCALEOUT_API_TOKEN", "SCALEOUT_CONTROLLER_TOKEN"],
    help="The admin token (env SCALEOUT_API_TOKEN), or the controller token (env "
    "SCALEOUT_CONTROLLER_TOKEN, read when SCALEOUT_API_TOKEN is not set), if the combiner requires "
    "credentials.",
)
@click.option(
    "--tls",
    "use_tls",
    is_flag=True,
    help="Dial with TLS (implied by --tls-ca or --tls-client-cert), verifying the combiner's certificate.",
)
@click.option(
    "--grpc-health",
    is_flag=True,
    help="Ask the standard grpc.health.v1 service instead (no token needed, as probes call it): "
    "exit 0 only while it says SERVING, so a combiner shutting down fails.",
)
@client_tls_options
def health(
    host: str, port: int, timeout: float, token: str | None, use_tls: bool, grpc_health: bool, tls: ClientTLS
) -> None:
    """Exit 0 if the combiner answers Control.Info (or grpc.health.v1: SERVING) within the timeout, else 1."""
    import asyncio

    import grpc

    from scaleout.proto.channels import certificate_refusal

    target = f"{host}:{port}"
    dial_tls = tls if use_tls or tls.ca is not None or tls.cert is not None else None
    try:
        if grpc_health:
            status = asyncio.run(_health_status(target, dial_tls, timeout))
        else:
            info = asyncio.run(_info(target, dial_tls, token, timeout))
    except grpc.RpcError as error:
        reason = certificate_refusal(error, target, dial_tls) or f"{error.code().name}: {error.details()}"
        click.echo(f"combiner at {target} is not healthy: {reason}", err=True)
        sys.exit(1)
    if not grpc_health:
        click.echo(f"combiner {info.name} at {target} is serving {len(info.clients)} client(s)")
    elif status == "SERVING":
        click.echo(f"combiner at {target} is SERVING")
    else:
        click.echo(f"combiner at {target} is not healthy: grpc.health.v1 says {status}", err=True)
        sys.exit(1)


async def _health_status(target: str, tls: ClientTLS | None, timeout: float) -> str:
    """The combiner's overall grpc.health.v1 status, by name (SERVING, NOT_SERVING)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from scaleout.proto.channels import open_channel

    async with open_channel(target, tls, None) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


async def _info(target: str, tls: ClientTLS | None, token: str | None, timeout: float) -> Any:
    """Control.Info over the same channel the controller opens."""
    from scaleout.proto import scaleout_pb2 as pb
    from scaleout.proto import scaleout_pb2_grpc as rpc
    from scaleout.proto.channels import open_channel

    async with open_channel(target, tls, token) as channel:
        return await rpc.ControlStub(channel).Info(pb.CombinerInfoRequest(), timeout=timeout)


@combiner_group.command("list")
@api_options
def list_combiners(remote: Remote) -> None:
    """The combiners registered with the API, and how many clients each serves."""
    with remote.connect() as api:
        combiners = api.get_combiners()
    remote.emit(combiners, lambda: print_records("combiners", combiners["result"], COLUMNS))


COLUMNS = [
    Column("name", field("name"), keep=ALWAYS),
    Column("address", lambda c: f"{c.get('address', '')}:{c.get('port', '')}"),
    Column("status", field("status"), keep=ALWAYS),
    Column("clients", field("client_count"), "right"),
    Column("last seen", field("last_seen", when)),
]
