"""`scaleout validation list`: the metrics clients reported for each validated model."""

from __future__ import annotations

from typing import Any

import click

from scaleout.cli.remote import Remote, api_options, resolve_id
from scaleout.cli.tables import Column, console, field, flatten, number, records_table, short_id, when

BASE_COLUMNS = [
    Column("id", field("id", short_id)),
    Column("model", field("model_id", short_id)),
    Column("client", field("client_id", short_id)),
    Column("session", field("session_id", short_id)),
    Column("round", field("round_id", short_id)),
    Column("created", field("created_at", when)),
]


@click.group("validation")
def validation_group() -> None:
    """The metrics clients reported when validating models."""


@validation_group.command("list")
@click.option("--session-id", help="Only the validations of this session.")
@click.option("--model-id", help="Only the validations of this model.")
@api_options
def list_validations(remote: Remote, session_id: str | None, model_id: str | None) -> None:
    """Every validation, oldest first, one column per metric (nested metrics as dotted names)."""
    with remote.connect() as api:
        session_id = resolve_id(api, "sessions", session_id) if session_id else None
        model_id = resolve_id(api, "models", model_id) if model_id else None
        validations = api.get_validations(session_id=session_id, model_id=model_id)
    rows = validations["result"]
    remote.emit(validations, lambda: console().print(records_table("validations", rows, columns(rows))))


def columns(rows: list[dict[str, Any]]) -> list[Column]:
    """The fixed columns, then one per metric any row reported."""
    names = sorted({name for row in rows for name in flatten(row.get("metrics", {}))})
    return [*BASE_COLUMNS, *(metric_column(name) for name in names)]


def metric_column(name: str) -> Column:
    return Column(name, lambda row: number(flatten(row.get("metrics", {})).get(name)), "right")
