"""`scaleout local PACKAGE_DIR`: a whole federation on this machine, live progress, a metrics table."""

import asyncio
import contextlib
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from scaleout import round_rules as rules
from scaleout.api.settings import DEFAULT_PORT
from scaleout.cli import tables
from scaleout.cli.aggregator import aggregator_options
from scaleout.cli.asynchronous import async_options
from scaleout.cli.common import env_dir_option, user_errors
from scaleout.store import open_statestore
from scaleout.store.uri import S3Credentials

if TYPE_CHECKING:
    from scaleout.local import LocalSettings

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
    "--round-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=180.0,
    show_default=True,
    help="Seconds a round may take before it fails with the updates it has (raise it for slow packages).",
)
@click.option("--min-clients", type=click.IntRange(1), help="Updates a round needs (default: all clients).")
@click.option("--validate/--no-validate", default=True, show_default=True, help="Validate every new model.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="The API's and dashboard's port on 127.0.0.1 when free (else any free port; the URL is printed).",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Keep the API, dashboard and federation up after the session, until Ctrl-C.",
)
@click.option(
    "--buffer-size",
    type=click.IntRange(1),
    help="Sync: end a round after this many updates. Async: updates per version "
    f"[default: {rules.DEFAULT_ASYNC_BUFFER_SIZE}].",
)
@async_options
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
    port: int,
    serve: bool,
    buffer_size: int | None,
    mode: str,
    async_config: dict[str, Any],
    aggregator: str,
    aggregator_kwargs: dict[str, float],
    env_dir: Path,
) -> None:
    """Run a session of ROUNDS rounds (or, with --mode async, of versions) on PACKAGE_DIR with CLIENTS
    local clients.

    API, controller and one combiner run in this process; each client is its own process with its own
    data partition (SCALEOUT_DATA_PARTITION). The dashboard's URL is printed at the start; with
    --serve it stays up after the session. Ctrl-C stops everything cleanly.
    """
    from scaleout.local import LocalFederation, LocalSettings  # the servers: imported when run

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
        mode=mode,
        buffer_size=buffer_size,
        async_config=async_config,
        env_dir=env_dir,
        port=port,
        serve=serve,
    )
    progress = Progress()
    outcome: list[str] = []  # the ended session's status, set by report()

    def report(session_id: str) -> None:
        progress.close()
        outcome.append(print_results(settings, session_id))

    with user_errors(), progress:
        federation = LocalFederation(settings, on_status=progress.update, on_session_end=report)
        asyncio.run(federation.run())
    if outcome != ["Finished"]:
        raise SystemExit(1)


def print_results(settings: "LocalSettings", session_id: str) -> str:
    """The metrics table and the session's outcome; returns its status."""
    store = open_statestore(settings.db_uri)
    try:
        out = tables.console()
        out.print(results_table(store, session_id, out.width))
        session = store.sessions.get(session_id)
    finally:
        store.close()
    done = tables.session_done(session.model_dump(mode="json"))
    unit = "versions" if settings.mode == "async" else "rounds"
    console.print(f"Session {session_id}: {session.status} ({done} {unit}).")
    if session.error:
        console.print(f"[red]{session.error}[/red]")
    console.print(f"The statestore and models are kept in {settings.work_dir}/ for inspection.")
    if not settings.serve and settings.db is None and settings.models is None:
        console.print(
            f"Next, see it in the dashboard: {invoked_as()} api start --work-dir {settings.work_dir}, "
            f"then open http://127.0.0.1:{DEFAULT_PORT}/ (or run `scaleout local` with --serve).",
            soft_wrap=True,
        )
    return session.status


def invoked_as() -> str:
    """How to type this CLI again: `scaleout` when that is on PATH, else the path it was run by
    (`.venv/bin/scaleout` under `make demo`)."""
    program = Path(sys.argv[0])
    on_path = shutil.which(program.name)
    if on_path and Path(on_path).resolve() == program.resolve():
        return program.name
    with contextlib.suppress(ValueError):
        return str(program.resolve().relative_to(Path.cwd()))
    return str(program)


class Progress:
    """The federation's progress: a live table in a terminal, one line per change when piped."""

    def __init__(self) -> None:
        self.live = Live(Text("starting"), console=console, refresh_per_second=8, transient=True)
        self.last_line = ""
        self.rounds_done: int | None = None  # piped: the rounds done last printed
        self.closed = False

    def __enter__(self) -> "Progress":
        if console.is_terminal:
            self.live.start()
        else:
            console.print("starting the federation")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.live.stop()

    def update(self, status: dict[str, Any]) -> None:
        stage = status.get("stage")
        if stage == "listening":
            console.print(f"Dashboard: {status['url']}   API docs: {status['url']}docs")
        elif stage == "serving":
            console.print(f"Serving the dashboard at {status['url']} until Ctrl-C.")
        elif self.closed:
            return
        elif console.is_terminal:
            self.live.update(render_status(status))
        else:
            self.print_line(status)

    def print_line(self, status: dict[str, Any]) -> None:
        """Piped: a line per stage, then one per round as it ends (not the sub-second updates), every
        round's even when several ended since the last status (fast async versions do)."""
        if status.get("stage") != "session":
            self._print(str(render_status(status)))
            return
        session = status["session"]
        done, previous = session["rounds_done"], self.rounds_done
        if done == previous:
            return
        self.rounds_done = done
        if previous is None:
            self._print(f"session {session['id']}: {tables.session_extent(session)}")
        for ended in range((previous or 0) + 1, done + 1):
            self._print(done_line(status, ended))

    def _print(self, line: str) -> None:
        if line != self.last_line:
            self.last_line = line
            console.print(line, soft_wrap=True)


def done_line(status: dict[str, Any], ended: int | None = None) -> str:
    """Piped: the line for round (or async version) ``ended``, the latest by default, with the async
    pace and staleness as they are now."""
    session = status["session"]
    if ended is not None:
        session = {**session, "rounds_done": ended}
    if not tables.is_async(session):
        return f"round {tables.session_done(session)} done"
    stats = status["stats"]
    return (
        f"version {tables.session_done(session)} committed: "
        f"{tables.per_minute(stats['versions_per_second'])} versions/min, "
        f"staleness mean/max {tables.staleness_mean_max(stats)}"
    )


def render_status(status: dict[str, Any]) -> Text | Table:
    """One line while starting; a live table of the running round during the session."""
    stage = status.get("stage", "")
    if stage == "waiting for clients":
        return Text(f"waiting for clients: {status['online']}/{status['clients']} connected")
    if stage != "session":
        return Text(stage)
    session, live_round = status["session"], status.get("round")
    if tables.is_async(session):
        title = f"session {session['id']}  {session['status']}"
        return tables.async_progress_table(title, session, status["stats"], live_round)
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


def results_table(store: Any, session_id: str, width: int) -> Table:
    """Per round: status, updates, examples, time and the clients' mean validation metrics."""
    rounds = store.rounds.list({"session_id": session_id}, sort_key="index").items
    validations = store.validations.list({"session_id": session_id}).items
    return tables.rounds_table(
        [r.model_dump(mode="json") for r in rounds], [v.model_dump(mode="json") for v in validations], width
    )
