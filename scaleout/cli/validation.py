"""`scaleout validation list`: the metrics clients reported for each validated model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from scaleout.cli.remote import Remote, api_options, filter_id, paging_options
from scaleout.cli.tables import (
    HIGH,
    LOW,
    MEDIUM,
    Column,
    client_labels,
    field,
    flatten,
    number,
    print_page,
    short_id,
    when,
)


@click.group("validation")
def validation_group() -> None:
    """The metrics clients reported when validating models."""


@validation_group.command("list")
@click.option("--session-id", help="Only the validations of this session.")
@click.option("--model-id", help="Only the validations of this model.")
@paging_options
@api_options
def list_validations(
    remote: Remote, session_id: str | None, model_id: str | None, limit: int, skip: int
) -> None:
    """The validations, oldest first, a page at a time, one column per metric (nested metrics as
    dotted names).

    Clients are shown by name and rounds by their number in the session (from 1).
    """
    with remote.connect() as api:
        session_id = filter_id(api, "sessions", session_id)
        model_id = filter_id(api, "models", model_id)
        validations = api.get_validations(session_id=session_id, model_id=model_id, limit=limit, skip=skip)
        clients = client_labels(api.get_clients()["result"])
        rounds = {r["id"]: r["index"] + 1 for r in api.get_rounds(session_id=session_id)["result"]}
    rows = validations["result"]
    remote.emit(
        validations, lambda: print_page("validations", validations, columns(rows, clients, rounds), skip)
    )


def columns(
    rows: list[dict[str, Any]], clients: Mapping[str, str], rounds: Mapping[str, int]
) -> list[Column]:
    """The fixed columns, then one per metric any row reported."""
    names = sorted({name for row in rows for name in flatten(row.get("metrics", {}))})
    return [
        Column("id", field("id", short_id), keep=LOW),
        Column("session", field("session_id", short_id), keep=MEDIUM),
        Column("round", lambda v: str(rounds.get(v.get("round_id") or "", "")), "right", HIGH),
        Column("client", lambda v: clients.get(v["client_id"], short_id(v["client_id"])), keep=HIGH),
        Column("model", field("model_id", short_id), keep=LOW),
        Column("created", field("created_at", when), keep=LOW),
        *(metric_column(name) for name in names),
    ]


def metric_column(name: str) -> Column:
    return Column(
        name, lambda row: number(flatten(row.get("metrics", {})).get(name)), "right", HIGH, wrap_header=True
    )
