"""The `scaleout` command: one click group, each command family in its own module."""

import os
from pathlib import Path

import click

from scaleout import __version__
from scaleout.cli.config import load_config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="scaleout")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="SCALEOUT_CONFIG",
    callback=load_config,
    is_eager=True,
    expose_value=False,
    help="YAML file of option defaults, sections by command (e.g. api: start: port: 8092); "
    "flags and SCALEOUT_* variables take precedence (env SCALEOUT_CONFIG).",
)
def cli() -> None:
    """scaleout-edge: federated learning where the data stays with its owners."""
    # gRPC's C core logs each failed TLS handshake on stderr at INFO; our errors say it in one line
    # (set GRPC_VERBOSITY=INFO or DEBUG to see it). Set here, before any command imports grpc.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


from scaleout.cli.package import package_group  # noqa: E402  (registered after cli exists)
from scaleout.cli.run import run_group  # noqa: E402

cli.add_command(run_group)
cli.add_command(package_group)
from scaleout.cli.api import api_group  # noqa: E402

cli.add_command(api_group)
from scaleout.cli.combiner import combiner_group  # noqa: E402

cli.add_command(combiner_group)
from scaleout.cli.client import client_group  # noqa: E402

cli.add_command(client_group)
from scaleout.cli.local import local_command  # noqa: E402

cli.add_command(local_command)
from scaleout.cli.init import init_command  # noqa: E402
from scaleout.cli.model import model_group  # noqa: E402
from scaleout.cli.round import round_group  # noqa: E402
from scaleout.cli.session import session_group  # noqa: E402
from scaleout.cli.validation import validation_group  # noqa: E402

cli.add_command(session_group)
cli.add_command(model_group)
cli.add_command(round_group)
cli.add_command(validation_group)
cli.add_command(init_command)
from scaleout.cli.certs import certs_group  # noqa: E402

cli.add_command(certs_group)
from scaleout.cli.event import event_group  # noqa: E402

cli.add_command(event_group)
