"""`scaleout round list`: the rounds of every session (or one), with their outcome."""

from __future__ import annotations

from dataclasses import replace

import click

from scaleout.cli.remote import Remote, api_options, filter_id, paging_options
from scaleout.cli.tables import (
    ALWAYS,
    HIGH,
    LOW,
    STALENESS_HEADER,
    Column,
    example_count,
    field,
    is_async,
    print_page,
    rejected_count,
    round_number,
    round_seconds,
    short_id,
    staleness_range,
    update_count,
    when,
)

ROUND_COLUMNS = [
    Column("id", field("id", short_id), keep=LOW),
    Column("session", field("session_id", short_id), keep=HIGH),
    Column("round", round_number, "right", ALWAYS),
    Column("status", field("status"), keep=ALWAYS),
    Column("updates", update_count, "right", HIGH),
    Column(STALENESS_HEADER, staleness_range, "right", HIGH),
    Column("rejected", rejected_count, "right"),
    Column("examples", example_count, "right", LOW),
    Column("seconds", round_seconds, "right"),
    Column("model", field("model_id", short_id), keep=LOW),
    Column("epsilon", lambda r: "" if r.get("epsilon") is None else f"{r['epsilon']:.3g}", "right", HIGH),
    Column("started", field("started_at", when), keep=LOW),
    Column("error", lambda r: r.get("error") or "", keep=HIGH, flexible=True),
]


@click.group("round")
def round_group() -> None:
    """The rounds sessions ran."""


@round_group.command("list")
@click.option("--session-id", help="Only the rounds of this session.")
@paging_options
@api_options
def list_rounds(remote: Remote, session_id: str | None, limit: int, skip: int) -> None:
    """The rounds, oldest first, a page at a time (round numbers count from 1 within their session)."""
    with remote.connect() as api:
        session_id = filter_id(api, "sessions", session_id)
        rounds = api.get_rounds(session_id=session_id, limit=limit, skip=skip)
    remote.emit(rounds, lambda: print_page("rounds", rounds, round_columns(rounds["result"]), skip))


def round_columns(rounds: list[dict]) -> list[Column]:
    """The columns for these rounds: epsilon only when a round spent privacy (central DP); staleness
    only with async versions, and "version" for the number when every round is one."""
    left_out = set()
    if all(r.get("epsilon") is None for r in rounds):
        left_out.add("epsilon")
    if not any(is_async(r) for r in rounds):
        left_out.add(STALENESS_HEADER)
    columns = [c for c in ROUND_COLUMNS if c.header not in left_out]
    if rounds and all(is_async(r) for r in rounds):
        columns = [replace(c, header="version") if c.header == "round" else c for c in columns]
    return columns
