"""--aggregator and --aggregator-kwarg, shared by `session start` and `local`."""

from collections.abc import Callable
from typing import Any

import click

from scaleout import round_rules as rules


def _parse_kwargs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, float]:
    kwargs: dict[str, float] = {}
    for item in values:
        key, sep, text = item.partition("=")
        try:
            if not (sep and key):
                raise ValueError
            kwargs[key] = float(text)
        except ValueError:
            raise click.BadParameter(
                f"{item!r} is not KEY=NUMBER (e.g. server_lr=0.01)", ctx, param
            ) from None
    return kwargs


def aggregator_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Adds ``aggregator`` (str) and ``aggregator_kwargs`` (dict[str, float]) parameters."""
    command = click.option(
        "--aggregator-kwarg",
        "aggregator_kwargs",
        multiple=True,
        callback=_parse_kwargs,
        metavar="KEY=NUMBER",
        help="A kwarg of the aggregator, repeatable (e.g. server_lr=0.01, beta=0.2, dp_clip_norm=1); "
        "the README's strategies table lists them with their defaults and ranges.",
    )(command)
    return click.option(
        "--aggregator",
        type=click.Choice(rules.AGGREGATORS),
        default="fedavg",
        show_default=True,
        help="How updates are aggregated: FedAvg, a server optimizer or a robust rule.",
    )(command)
