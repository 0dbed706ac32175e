"""What every `scaleout` command shares: how our errors reach the user, and common options."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from scaleout import logs
from scaleout.client.python_env import default_env_dir
from scaleout.errors import ScaleoutError
from scaleout.logs import FORMATS
from scaleout.store.uri import (
    DEFAULT_MODEL_REPOSITORY_URI,
    DEFAULT_STATESTORE_URI,
    work_dir_models_uri,
    work_dir_statestore_uri,
)


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


def storage_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--db and --models (as db_uri, models_uri): the statestore and model repository a server opens."""
    command = click.option(
        "--models",
        "models_uri",
        envvar="SCALEOUT_MODELS",
        default=DEFAULT_MODEL_REPOSITORY_URI,
        show_default=True,
        help="Model repository URI: file://path or s3://bucket?endpoint=host:port (env SCALEOUT_MODELS).",
    )(command)
    return click.option(
        "--db",
        "db_uri",
        envvar="SCALEOUT_DB",
        default=DEFAULT_STATESTORE_URI,
        show_default=True,
        help="Statestore URI: sqlite:///path or mongodb://host:port/database (env SCALEOUT_DB).",
    )(command)


def stores_of(work_dir: Path | None, db_uri: str, models_uri: str) -> tuple[str, str]:
    """The statestore and repository URIs: --db and --models where given (flag, env or config file),
    else those of the --work-dir folder as `scaleout local` lays it out, else the defaults."""
    if work_dir is None:
        return db_uri, models_uri
    context = click.get_current_context()

    def given(name: str) -> bool:
        return context.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)

    return (
        db_uri if given("db_uri") else work_dir_statestore_uri(work_dir),
        models_uri if given("models_uri") else work_dir_models_uri(work_dir),
    )


log_level_option = click.option(
    "--log-level",
    envvar="SCALEOUT_LOG_LEVEL",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"], case_sensitive=False),
    help="How much the server logs (env SCALEOUT_LOG_LEVEL).",
)


log_format_option = click.option(
    "--log-format",
    envvar="SCALEOUT_LOG_FORMAT",
    default="text",
    show_default=True,
    type=click.Choice(list(FORMATS)),
    help="Log lines as text, or JSON objects with session/round/client ids (env SCALEOUT_LOG_FORMAT).",
)


def configure_logging(log_level: str, log_format: str = "text") -> None:
    """The servers' log format, at the level of --log-level."""
    logs.configure_logging(log_level, log_format)
