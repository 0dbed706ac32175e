"""`scaleout round list`: the rounds of every session (or one), with their outcome."""

from __future__ import annotations

import click

from scaleout.cli.remote import Remote, api_options, resolve_id
from scaleout.cli.tables import Column, console, duration, field, records_table, short_id, when

ROUND_COLUMNS = [
    Column("id", field("id", short_id)),
    Column("session", field("session_id", short_id)),
    Column("round", lambda r: str(r["index"] + 1), "right"),
    Column("status", field("status")),
    Column("updates", lambda r: str(len(r.get("clients", []))), "right"),
    Column("rejected", lambda r: str(len(r.get("rejected", []))), "right"),
    Column("examples", lambda r: str(sum(c.get("num_examples", 0) for c in r.get("clients", []))), "right"),
    Column("seconds", lambda r: duration(r.get("started_at"), r.get("finished_at")), "right"),
    Column("model", field("model_id", short_id)),
    Column("epsilon", lambda r: "" if r.get("epsilon") is None else f"{r['epsilon']:.3g}", "right"),
    Column("started", field("started_at", when)),
    Column("error", lambda r: r.get("error") or ""),
]


@click.group("round")
def round_group() -> None:
    """The rounds sessions ran."""


@round_group.command("list")
@click.option("--session-id", help="Only the rounds of this session.")
@api_options
def list_rounds(remote: Remote, session_id: str | None) -> None:
    """Every round, oldest first (round numbers count from 1 within their session)."""
    with remote.connect() as api:
        session_id = resolve_id(api, "sessions", session_id) if session_id else None
        rounds = api.get_rounds(session_id=session_id)
    remote.emit(rounds, lambda: console().print(records_table("rounds", rounds["result"], ROUND_COLUMNS)))
