"""--mode and the asynchronous (FedBuff) session flags, shared by `session start` and `local`.

The flags default to None, which leaves the field to SessionConfig's default at the API, so the defaults
live in one place; the API checks the values (bounds, an end by --max-versions or --max-duration).
"""

import functools
from collections.abc import Callable
from typing import Any

import click

from scaleout import round_rules as rules

OPTIONS = (
    click.option(
        "--mode",
        type=click.Choice(rules.MODES),
        default="sync",
        show_default=True,
        help="sync: rounds wait for their clients; async: FedBuff, every --buffer-size updates make a "
        "new version (README: Asynchronous sessions).",
    ),
    click.option(
        "--max-versions", type=click.IntRange(1), help="Async: stop after this many versions (server steps)."
    ),
    click.option(
        "--max-duration",
        type=click.FloatRange(min=0, min_open=True),
        help="Async: stop after this many seconds of training.",
    ),
    click.option(
        "--max-concurrency", type=click.IntRange(1), help="Async: clients training at once [default: all]."
    ),
    click.option(
        "--staleness",
        type=click.Choice(rules.STALENESS),
        help="Async: an update tau versions stale weighs 1 (constant) or (1 + tau) ** -exponent "
        "(polynomial) [default: polynomial].",
    ),
    click.option(
        "--staleness-exponent",
        type=click.FloatRange(0, rules.MAX_STALENESS_EXPONENT),
        help="Async: the polynomial's exponent [default: 0.5, the paper's 1/sqrt(1 + tau)].",
    ),
    click.option(
        "--max-staleness",
        type=click.IntRange(0),
        help="Async: reject updates staler than this many versions [default: no bound].",
    ),
    click.option(
        "--server-lr",
        type=click.FloatRange(min=0, min_open=True),
        help="Async with fedavg: the new version is x + server-lr * the buffer's mean delta [default: 1].",
    ),
    click.option(
        "--validate-every",
        type=click.IntRange(1),
        help="Async: validate every this many versions [default: 1].",
    ),
)
ASYNC_FIELDS = (
    "max_versions",
    "max_duration",
    "max_concurrency",
    "staleness",
    "staleness_exponent",
    "max_staleness",
    "server_lr",
    "validate_every",
)


def async_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds ``mode`` (str) and ``async_config`` (the async SessionConfig fields given, by name).

    An async flag with --mode sync is a usage error rather than silently ignored.
    """

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in ASYNC_FIELDS}
        async_config = {name: value for name, value in given.items() if value is not None}
        if kwargs["mode"] != "async" and async_config:
            flags = ", ".join(f"--{name.replace('_', '-')}" for name in async_config)
            raise click.UsageError(f"{flags} applies to --mode async only: add --mode async or leave it out")
        return command(*args, async_config=async_config, **kwargs)

    for option in reversed(OPTIONS):
        run = option(run)
    return run
