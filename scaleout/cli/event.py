"""`scaleout event list`: what happened in the federation, clients shown by name."""

from __future__ import annotations

from collections.abc import Mapping

import click

from scaleout.cli.remote import Remote, api_options, filter_id, paging_options
from scaleout.cli.tables import ALWAYS, HIGH, LOW, Column, client_labels, field, print_page, short_id, when


@click.group("event")
def event_group() -> None:
    """The federation's events: rounds started, committed and failed, sessions resumed, ..."""


@event_group.command("list")
@click.option("--session-id", help="Only the events of this session.")
@click.option("--level", type=click.Choice(["debug", "info", "warning", "error"]), help="Only this level.")
@paging_options
@api_options
def list_events(remote: Remote, session_id: str | None, level: str | None, limit: int, skip: int) -> None:
    """The events, oldest first, a page at a time."""
    with remote.connect() as api:
        session_id = filter_id(api, "sessions", session_id)
        events = api.get_events(session_id=session_id, level=level, limit=limit, skip=skip)
        clients = client_labels(api.get_clients()["result"])
    remote.emit(events, lambda: print_page("events", events, columns(clients), skip))


def columns(clients: Mapping[str, str]) -> list[Column]:
    return [
        Column("time", field("timestamp", when), keep=HIGH),
        Column("level", field("level"), keep=HIGH),
        Column("type", field("type"), keep=ALWAYS),
        Column("client", lambda e: clients.get(e.get("client_id") or "", short_id(e.get("client_id")))),
        Column("session", field("session_id", short_id), keep=LOW),
        Column("message", field("message"), keep=ALWAYS, flexible=True),
    ]
