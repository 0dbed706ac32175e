"""`scaleout session start|list|show|stop`: run and inspect sessions of a running federation."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from rich.live import Live
from rich.table import Table
from rich.text import Text

from scaleout import round_rules as rules
from scaleout.api.client import ENDED, APIClient, SessionTimeout
from scaleout.cli.aggregator import aggregator_options
from scaleout.cli.asynchronous import async_options
from scaleout.cli.remote import Remote, api_options, paging_options, resolve_id
from scaleout.cli.tables import (
    ALWAYS,
    HIGH,
    LOW,
    Column,
    async_progress_table,
    console,
    field,
    is_async,
    key_value_table,
    number,
    per_minute,
    print_page,
    rounds_table,
    session_done,
    session_extent,
    short_id,
    staleness_mean_max,
    when,
)
from scaleout.store.entities import SessionConfig

REFRESH = 1.0  # seconds between redraws; the session's end is seen at once (long poll), not on a tick
FAILED = frozenset({"Failed", "Terminated"})


@click.group("session")
def session_group() -> None:
    """Start, watch, list, inspect and stop sessions (a run of rounds)."""


@session_group.command("start")
@click.option("--rounds", type=click.IntRange(1), default=5, show_default=True, help="Rounds to run.")
@click.option(
    "--round-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=180.0,
    show_default=True,
    help="Seconds a round waits for updates.",
)
@click.option(
    "--min-clients", type=click.IntRange(1), default=1, show_default=True, help="Updates a round needs."
)
@click.option("--requested-clients", type=click.IntRange(1), help="Clients to select (default: all).")
@click.option(
    "--buffer-size",
    type=click.IntRange(1),
    help="Sync: end a round after this many updates. Async: updates per version "
    f"[default: {rules.DEFAULT_ASYNC_BUFFER_SIZE}].",
)
@async_options
@aggregator_options
@click.option("--validate/--no-validate", default=True, show_default=True, help="Validate every new model.")
@click.option("--helper", default="numpyhelper", show_default=True, help="Helper that reads the models.")
@click.option(
    "--max-update-norm",
    type=click.FloatRange(min=0, min_open=True),
    help="Reject an update whose L2 distance from the global model is above this (default: no bound).",
)
@click.option(
    "--clip-updates",
    is_flag=True,
    help="Scale an update over --max-update-norm down to it instead of rejecting it.",
)
@click.option("--model-id", help="Seed model of the session (default: the latest model).")
@click.option("--name", default="", help="A name for people (default: generated).")
@click.option(
    "--round-retries",
    type=click.IntRange(0),
    default=SessionConfig.model_fields["round_retries"].default,
    show_default=True,
    help="Times a failed round (a lost combiner, too few clients) is retried before the session fails.",
)
@click.option(
    "--retry-timeout",
    type=click.FloatRange(min=0),
    default=SessionConfig.model_fields["retry_timeout"].default,
    show_default=True,
    help="Seconds a failed round keeps being retried, with backoff, after its first failure.",
)
@click.option(
    "--wait/--no-wait",
    default=None,
    help="Show live progress until the session ends, then its rounds and metrics "
    "[default: --wait on a terminal, --no-wait otherwise, so scripts get the id at once].",
)
@api_options
def start(
    remote: Remote,
    rounds: int,
    round_timeout: float,
    min_clients: int,
    requested_clients: int | None,
    buffer_size: int | None,
    mode: str,
    async_config: dict[str, Any],
    aggregator: str,
    aggregator_kwargs: dict[str, float],
    validate: bool,
    helper: str,
    max_update_norm: float | None,
    clip_updates: bool,
    model_id: str | None,
    name: str,
    round_retries: int,
    retry_timeout: float,
    wait: bool | None,
) -> None:
    """Start a session on the active package; exit 1 if it ends Failed or Terminated (with --wait)."""
    wait = sys.stdout.isatty() if wait is None else wait
    with remote.connect() as api:
        session_id = api.start_session(
            name=name or None,
            rounds=rounds,
            round_timeout=round_timeout,
            min_clients=min_clients,
            requested_clients=requested_clients,
            aggregator=aggregator,
            aggregator_kwargs=aggregator_kwargs,
            validate=validate,
            helper=helper,
            model_id=resolve_id(api, "models", model_id) if model_id else None,
            buffer_size=buffer_size,
            mode=mode,
            **async_config,
            max_update_norm=max_update_norm,
            clip_updates=clip_updates,
            round_retries=round_retries,
            retry_timeout=retry_timeout,
        )
        session = api.get_session(session_id)
        if not wait:
            remote.emit(session, lambda: click.echo(started_message(session)))
            return
        if not remote.as_json:
            click.echo(started_message(session))
        try:
            session = watch(api, session_id)
        except KeyboardInterrupt:
            click.echo(
                f"Stopped watching; the session goes on. `scaleout session stop {session_id}` ends it."
            )
            sys.exit(130)
        report = session_report(api, session)
    remote.emit(report, lambda: print_report(report))
    if session["status"] in FAILED:
        sys.exit(1)


def started_message(session: dict[str, Any]) -> str:
    return (
        f"Session {session['name']} ({session['id']}) is {session['status']}: "
        f"{session_extent(session)}; follow it with `scaleout session show {session['id']}`."
    )


def watch(api: APIClient, session_id: str) -> dict[str, Any]:
    """Draw the session's live progress (on stderr) until it ends; return the ended session."""
    began = time.monotonic()
    session = api.get_session(session_id)
    with Live(Text("starting"), console=console(stderr=True), refresh_per_second=4) as live:
        while session["status"] not in ENDED:
            live.update(live_view(api, session, began))
            try:
                session = api.wait_for_session(session_id, timeout=REFRESH)
            except SessionTimeout:
                session = api.get_session(session_id)
        live.update(live_view(api, session, began))
    return session


def live_view(api: APIClient, session: dict[str, Any], began: float) -> Table:
    """The live table: the running round, or an async session's pace, staleness and buffer."""
    live = api.get_session_progress(session["id"]) if session["status"] not in ENDED else None
    title = f"session {session['name']}  {session['status']}  {time.monotonic() - began:.1f} s"
    if is_async(session):
        return async_progress_table(title, session, api.get_session_stats(session["id"]), live)
    return progress_view(session, live, began)


def progress_view(session: dict[str, Any], live: dict[str, Any] | None, began: float) -> Table:
    """One row: round i/N, stage, clients reported/selected, rejected, round and session time."""
    total = session["config"]["rounds"]
    table = Table(title=f"session {session['name']}  {session['status']}", title_justify="left")
    for header in ("round", "stage", "reported", "rejected", "round time", "elapsed"):
        table.add_column(header)
    elapsed = f"{time.monotonic() - began:.1f} s"
    if live:
        table.add_row(
            f"{live['index'] + 1}/{total}",
            live["stage"],
            f"{live['updates_received']}/{live['clients_selected']}",
            str(live["updates_rejected"]),
            f"{live['elapsed']:.1f} s",
            elapsed,
        )
    else:
        stage = "ended" if session["status"] in ENDED else "between rounds"
        table.add_row(f"{session['rounds_done']}/{total}", stage, "", "", "", elapsed)
    return table


def session_report(api: APIClient, session: dict[str, Any]) -> dict[str, Any]:
    """The session with its rounds and validations, each as the API answers them."""
    rounds = api.get_rounds(session_id=session["id"], sort_key="index")
    validations = api.get_validations(session_id=session["id"])
    report = {"session": session, "rounds": rounds, "validations": validations}
    if is_async(session):
        report["stats"] = api.get_session_stats(session["id"])
    return report


def print_report(report: dict[str, Any]) -> None:
    session = report["session"]
    out = console()
    out.print(
        key_value_table(
            f"session {session['id']}",
            {
                "name": session["name"],
                "status": session["status"],
                **summary(report),
                "seed model": session.get("seed_model_id"),
                "created": when(session.get("created_at")),
                "started": when(session.get("started_at")),
                "finished": when(session.get("finished_at")),
                "error": session.get("error") or "",
            },
        )
    )
    out.print(key_value_table("config", session["config"]))
    out.print(rounds_table(report["rounds"]["result"], report["validations"]["result"], out.width))


def summary(report: dict[str, Any]) -> dict[str, str]:
    """Rounds done; for an async session versions done, their pace, staleness and rejections."""
    session, stats = report["session"], report.get("stats")
    if stats is None:
        return {"rounds done": session_done(session)}
    counts = stats["staleness"]["counts"]
    rejected = ", ".join(f"{reason} {count}" for reason, count in stats["rejected"].items())
    return {
        "versions done": session_done(session),
        "versions/min": per_minute(stats["versions_per_second"]),
        f"versions/min, last {stats['window']}": per_minute(stats["recent_versions_per_second"]),
        "updates/version": number(stats["updates_per_version"]),
        "staleness mean/max": staleness_mean_max(stats),
        "staleness histogram": "  ".join(f"{tau}:{count}" for tau, count in enumerate(counts)),
        "rejected": rejected or "0",
    }


SESSION_COLUMNS = [
    Column("id", field("id", short_id), keep=HIGH),
    Column("name", field("name"), keep=ALWAYS),
    Column("status", field("status"), keep=ALWAYS),
    Column("rounds", session_done, "right", HIGH),
    Column("mode", lambda s: s["config"].get("mode", "sync"), keep=LOW),
    Column("aggregator", lambda s: s["config"]["aggregator"]),
    Column("seed model", field("seed_model_id", short_id), keep=LOW),
    Column("started", field("started_at", when), keep=HIGH),
    Column("finished", field("finished_at", when)),
]


@session_group.command("list")
@paging_options
@api_options
def list_sessions(remote: Remote, limit: int, skip: int) -> None:
    """The sessions, oldest first, a page at a time."""
    with remote.connect() as api:
        sessions = api.get_sessions(limit=limit, skip=skip)
    remote.emit(sessions, lambda: print_page("sessions", sessions, SESSION_COLUMNS, skip))


@session_group.command("show")
@click.argument("session_id")
@api_options
def show(remote: Remote, session_id: str) -> None:
    """A session, its config, its rounds and the mean validation metrics per round."""
    with remote.connect() as api:
        report = session_report(api, api.get_session(resolve_id(api, "sessions", session_id)))
    remote.emit(report, lambda: print_report(report))


@session_group.command("stop")
@click.argument("session_id")
@api_options
def stop(remote: Remote, session_id: str) -> None:
    """Stop a Started session after asking its running round to end; it becomes Terminated."""
    with remote.connect() as api:
        session = api.stop_session(resolve_id(api, "sessions", session_id))
    remote.emit(
        session, lambda: click.echo(f"Session {session['name']} ({session['id']}): {session['status']}")
    )
