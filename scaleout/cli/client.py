"""`scaleout client start`: run an edge client (flags > SCALEOUT_* environment > defaults);
`scaleout client list`: the clients a running federation knows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

import click

from scaleout.cli.common import configure_logging, env_dir_option, log_level_option, user_errors
from scaleout.cli.credentials import enrollment_group, token_group
from scaleout.cli.remote import Remote, api_options, paging_options
from scaleout.cli.tables import ALWAYS, HIGH, LOW, Column, field, print_page, short_id, when
from scaleout.cli.tls import client_tls_options
from scaleout.client.settings import ClientSettings, validate_client_id
from scaleout.tls import ClientTLS

DEFAULT_WORK_ROOT = Path(".scaleout")
DEFAULTS = ClientSettings()  # the flags' defaults are the settings' own


@click.group("client")
def client_group() -> None:
    """Run an edge client that trains on this machine's data."""


@client_group.command("start")
@click.option(
    "--api-url",
    envvar="SCALEOUT_API_URL",
    default=DEFAULTS.api_url,
    show_default=True,
    help="URL of `scaleout api`; the client asks it for a combiner and the compute package.",
)
@click.option("--name", envvar="SCALEOUT_CLIENT_NAME", help="Display name (default: client-<id prefix>).")
@click.option(
    "--client-id",
    envvar="SCALEOUT_CLIENT_ID",
    help="Stable id; generated once and kept in the work dir when left out.",
)
@click.option(
    "--local-package",
    envvar="SCALEOUT_LOCAL_PACKAGE",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Run this compute package folder instead of downloading the active one.",
)
@click.option(
    "--work-dir",
    envvar="SCALEOUT_CLIENT_WORK_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the id, the package and task files [default: .scaleout/clients/<client-id>, "
    "or .scaleout/client without --client-id]. One client per work dir.",
)
@click.option(
    "--token",
    envvar=["SCALEOUT_CLIENT_TOKEN", "SCALEOUT_API_TOKEN"],
    help="This client's credential (`scaleout client token create`), or the federation's token, sent "
    "as 'Authorization: Bearer' to the API and the combiner "
    "(env SCALEOUT_CLIENT_TOKEN, else SCALEOUT_API_TOKEN).",
)
@click.option(
    "--enroll-secret",
    envvar="SCALEOUT_ENROLL_SECRET",
    help="Without --token: exchange this enrollment secret (`scaleout client enrollment create`) for a "
    "credential of this client's own, kept in the work dir so restarts reuse it.",
)
@click.option(
    "--enroll-secret-file",
    envvar="SCALEOUT_ENROLL_SECRET_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="As --enroll-secret, read from this file (a Docker secret, or the file `scaleout init "
    "--enroll-secret-file` writes).",
)
@click.option(
    "--heartbeat-interval",
    envvar="SCALEOUT_HEARTBEAT_INTERVAL",
    type=click.FloatRange(min=0.01),
    default=DEFAULTS.heartbeat_interval,
    show_default=True,
    help="Seconds between heartbeats to the combiner.",
)
@env_dir_option
@click.option(
    "--assign-timeout",
    envvar="SCALEOUT_ASSIGN_TIMEOUT",
    type=click.FloatRange(min=0),
    help="Give up when no combiner is assigned within this many seconds [default: wait forever].",
)
@click.option(
    "--task-timeout",
    envvar="SCALEOUT_TASK_TIMEOUT",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop an entry point that runs longer than this many seconds [default: no limit].",
)
@click.option(
    "--reconnect-attempts",
    envvar="SCALEOUT_RECONNECT_ATTEMPTS",
    type=click.IntRange(min=1),
    default=DEFAULTS.reconnect_attempts,
    show_default=True,
    help="Failed connections in a row to the combiner before asking the API for another.",
)
@click.option(
    "--rpc-deadline",
    envvar="SCALEOUT_RPC_DEADLINE",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULTS.rpc_deadline,
    show_default=True,
    help="Seconds a report to the combiner may take; also the slack of every model transfer.",
)
@click.option(
    "--min-transfer-rate",
    envvar="SCALEOUT_MIN_TRANSFER_RATE",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULTS.min_transfer_rate,
    show_default=True,
    help="Bytes/s below which a model download or upload is abandoned (after --rpc-deadline s).",
)
@click.option(
    "--max-queue-wait",
    envvar="SCALEOUT_MAX_QUEUE_WAIT",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULTS.max_queue_wait,
    show_default=True,
    help="Seconds a model transfer may wait for one of the combiner's transfer slots (its --max-transfers).",
)
@click.option(
    "--keepalive-time",
    envvar="SCALEOUT_CLIENT_KEEPALIVE_TIME",
    type=click.FloatRange(min=5),
    default=DEFAULTS.keepalive_time,
    show_default=True,
    help="Seconds without a byte from the combiner before an HTTP/2 ping checks the connection.",
)
@click.option(
    "--keepalive-timeout",
    envvar="SCALEOUT_CLIENT_KEEPALIVE_TIMEOUT",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULTS.keepalive_timeout,
    show_default=True,
    help="Seconds the ping's answer may take before the connection counts as dead.",
)
@click.option(
    "--max-unpacked-bytes",
    envvar="SCALEOUT_CLIENT_MAX_UNPACKED_BYTES",
    type=click.IntRange(min=1),
    default=DEFAULTS.max_unpacked_bytes,
    show_default=True,
    help="Refuse a compute package that unpacks to more (and, always, to over 250x its tarball).",
)
@click.option(
    "--data-partition",
    envvar="SCALEOUT_DATA_PARTITION",
    type=click.IntRange(min=0),
    help="This client's data partition (0-based), given to the entry points as SCALEOUT_DATA_PARTITION.",
)
@click.option(
    "--num-partitions",
    envvar="SCALEOUT_NUM_PARTITIONS",
    type=click.IntRange(min=1),
    help="How many data partitions there are, given to the entry points as SCALEOUT_NUM_PARTITIONS.",
)
@click.option(
    "--partition-claim-dir",
    envvar="SCALEOUT_PARTITION_CLAIM_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Without --data-partition: hold the first partition no other running client holds, by a lock "
    "in this folder shared by the clients of one host (e.g. a compose volume for replicas).",
)
@client_tls_options
@log_level_option
def start(
    api_url: str,
    name: str | None,
    client_id: str | None,
    local_package: Path | None,
    work_dir: Path | None,
    token: str | None,
    enroll_secret: str | None,
    enroll_secret_file: Path | None,
    heartbeat_interval: float,
    env_dir: Path,
    assign_timeout: float | None,
    task_timeout: float | None,
    reconnect_attempts: int,
    rpc_deadline: float,
    min_transfer_rate: float,
    max_queue_wait: float,
    keepalive_time: float,
    keepalive_timeout: float,
    max_unpacked_bytes: int,
    data_partition: int | None,
    num_partitions: int | None,
    partition_claim_dir: Path | None,
    tls: ClientTLS,
    log_level: str,
) -> None:
    """Connect to the federation and serve training and validation tasks until stopped (Ctrl-C)."""
    # Imported here so `scaleout --help` does not load grpc.
    from scaleout.client.edge import EdgeClient

    configure_logging(log_level)
    if log_level.upper() != "DEBUG":  # one line per HTTP request would drown the client's own log
        logging.getLogger("httpx").setLevel(logging.WARNING)
    if data_partition is not None and num_partitions is not None and data_partition >= num_partitions:
        raise click.BadParameter(
            f"{data_partition} is not below --num-partitions {num_partitions}", param_hint="--data-partition"
        )
    if data_partition is None and partition_claim_dir is not None and num_partitions is None:
        raise click.UsageError("--partition-claim-dir needs --num-partitions (SCALEOUT_NUM_PARTITIONS)")
    if enroll_secret and enroll_secret_file is not None:
        raise click.UsageError("give --enroll-secret or --enroll-secret-file, not both")
    with user_errors(), contextlib.ExitStack() as held:
        if enroll_secret_file is not None:
            from scaleout.client.credential import read_secret_file

            enroll_secret = read_secret_file(enroll_secret_file)
        if data_partition is None and partition_claim_dir is not None:
            from scaleout.client.partition_claim import claim_partition

            claim = held.enter_context(claim_partition(partition_claim_dir, num_partitions))
            data_partition = claim.partition
            logging.getLogger(__name__).info(
                "holding data partition %d of %d (%s)", data_partition, num_partitions, claim.path
            )
        # The entry points inherit the client's environment: that is how they learn their partition,
        # exactly as under `scaleout local`.
        if data_partition is not None:
            os.environ["SCALEOUT_DATA_PARTITION"] = str(data_partition)
        if num_partitions is not None:
            os.environ["SCALEOUT_NUM_PARTITIONS"] = str(num_partitions)
        if work_dir is None:  # the id names a folder here, so it is checked first
            work_dir = (
                DEFAULT_WORK_ROOT / "clients" / validate_client_id(client_id)
                if client_id
                else DEFAULT_WORK_ROOT / "client"
            )
        settings = ClientSettings(
            api_url=api_url,
            work_dir=work_dir,
            name=name,
            client_id=client_id,
            local_package=local_package,
            token=token or None,
            enroll_secret=enroll_secret or None,
            heartbeat_interval=heartbeat_interval,
            env_dir=env_dir,
            assign_timeout=assign_timeout,
            task_timeout=task_timeout,
            reconnect_attempts=reconnect_attempts,
            tls=tls,
            rpc_deadline=rpc_deadline,
            min_transfer_rate=min_transfer_rate,
            max_queue_wait=max_queue_wait,
            keepalive_time=keepalive_time,
            keepalive_timeout=keepalive_timeout,
            max_unpacked_bytes=max_unpacked_bytes,
        )
        asyncio.run(EdgeClient(settings).run())


client_group.add_command(token_group)
client_group.add_command(enrollment_group)


@client_group.command("list")
@paging_options
@api_options
def list_clients(remote: Remote, limit: int, skip: int) -> None:
    """The clients known to the API, a page at a time by name: status, combiner, when last seen."""
    with remote.connect() as api:
        clients = api.get_clients(sort_key="name", limit=limit, skip=skip)
    remote.emit(clients, lambda: print_page("clients", clients, COLUMNS, skip))


COLUMNS = [
    Column("id", field("id", short_id), keep=LOW),
    Column("name", field("name"), keep=ALWAYS),
    Column("status", field("status"), keep=ALWAYS),
    Column("combiner", field("combiner_id", short_id), keep=HIGH),
    Column("package", lambda c: (c.get("package_checksum") or "")[:12], keep=LOW),
    Column("last seen", field("last_seen", when), keep=HIGH),
]
