"""What every `scaleout` command shares: how our errors reach the user, and common options."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import click

from scaleout.client.python_env import default_env_dir
from scaleout.errors import ScaleoutError


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn our errors into click's: one clear message and exit code 1, no traceback."""
    try:
        yield
    except ScaleoutError as exc:
        raise click.ClickException(str(exc)) from exc


env_dir_option = click.option(
    "--env-dir",
    envvar="SCALEOUT_ENV_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=default_env_dir,
    show_default="~/.cache/scaleout/envs",
    help="Where python_env virtualenvs are cached (env SCALEOUT_ENV_DIR).",
)
