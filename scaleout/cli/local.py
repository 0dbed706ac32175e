"""`scaleout local PACKAGE_DIR`: a whole federation on this machine, live progress, a metrics table."""

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from scaleout.cli.aggregator import aggregator_options
from scaleout.cli.common import env_dir_option, user_errors
from scaleout.cli.tables import console as wide_console
from scaleout.cli.tables import rounds_table
from scaleout.store import open_statestore
from scaleout.store.uri import S3Credentials

console = Console()


@click.command("local")
@click.argument("package_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--clients", type=click.IntRange(1, 256), default=3, show_default=True, help="Client processes."
)
@click.option("--rounds", type=click.IntRange(1), default=5, show_default=True, help="Rounds in the session.")
@click.option(
    "--seed",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Seed model (.npz); by default the package's build entry point makes one.",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".scaleout"),
    show_default=True,
    help="Where the statestore, models, client folders and logs are kept (left for inspection).",
)
@click.option("--db", envvar="SCALEOUT_DB", help="Statestore URI (default: SQLite in --work-dir).")
@click.option(
    "--models", envvar="SCALEOUT_MODELS", help="Model repository URI (default: files in --work-dir)."
)
@click.option(
    "--round-timeout", type=click.FloatRange(min=0, min_open=True), default=180.0, show_default=True
)
@click.option("--min-clients", type=click.IntRange(1), help="Updates a round needs (default: all clients).")
@click.option("--validate/--no-validate", default=True, show_default=True, help="Validate every new model.")
@aggregator_options
@env_dir_option
def local_command(
    package_dir: Path,
    clients: int,
    rounds: int,
    seed: Path | None,
    work_dir: Path,
    db: str | None,
    models: str | None,
    round_timeout: float,
    min_clients: int | None,
    validate: bool,
    aggregator: str,
    aggregator_kwargs: dict[str, float],
    env_dir: Path,
) -> None:
    """Run a session of ROUNDS rounds on PACKAGE_DIR with CLIENTS local clients.

    API, controller and one combiner run in this process; each client is its own process with its own
    data partition (SCALEOUT_DATA_PARTITION). Ctrl-C stops everything cleanly.
    """
    from scaleout.local import LocalFederation, LocalSettings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = LocalSettings(
        package_dir=package_dir.resolve(),
        clients=clients,
        rounds=rounds,
        seed=seed,
        work_dir=work_dir,
        db=db,
        models=models,
        s3_credentials=S3Credentials.from_env(os.environ),
        round_timeout=round_timeout,
        min_clients=min_clients,
        validate=validate,
        aggregator=aggregator,
        aggregator_kwargs=aggregator_kwargs,
        env_dir=env_dir,
    )
    with user_errors(), Live(Text("starting"), console=console, refresh_per_second=8, transient=True) as live:
        federation = LocalFederation(settings, on_status=lambda status: live.update(render_status(status)))
        session_id = asyncio.run(federation.run())
    store = open_statestore(settings.db_uri)
    try:
        wide_console().print(results_table(store, session_id))  # 200 columns when piped: no folding
        session = store.sessions.get(session_id)
    finally:
        store.close()
    console.print(f"Session {session_id}: {session.status} ({session.rounds_done}/{rounds} rounds).")
    if session.error:
        console.print(f"[red]{session.error}[/red]")
    console.print(f"The statestore and models are kept in {work_dir}/ for inspection.")
    if session.status != "Finished":
        raise SystemExit(1)


def render_status(status: dict[str, Any]) -> Text | Table:
    """One line while starting; a live table of the running round during the session."""
    stage = status.get("stage", "")
    if stage == "waiting for clients":
        return Text(f"waiting for clients: {status['online']}/{status['clients']} connected")
    if stage != "session":
        return Text(stage)
    session, live_round = status["session"], status.get("round")
    table = Table(title=f"session {session['id']}  {session['status']}", title_justify="left")
    for column in ("round", "stage", "selected", "reported", "rejected", "elapsed"):
        table.add_column(column)
    total = session["config"]["rounds"]
    if live_round:
        table.add_row(
            f"{live_round['index'] + 1}/{total}",
            live_round["stage"],
            str(live_round["clients_selected"]),
            str(live_round["updates_received"]),
            str(live_round["updates_rejected"]),
            f"{live_round['elapsed']:.1f} s",
        )
    else:
        table.add_row(f"{session['rounds_done']}/{total}", "between rounds", "", "", "", "")
    return table


def results_table(store: Any, session_id: str) -> Table:
    """Per round: status, updates, examples, time and the clients' mean validation metrics."""
    rounds = store.rounds.list({"session_id": session_id}, sort_key="index").items
    validations = store.validations.list({"session_id": session_id}).items
    return rounds_table(
        [r.model_dump(mode="json") for r in rounds], [v.model_dump(mode="json") for v in validations]
    )
