"""Async (FedBuff) sessions in the CLI: `session start --mode async` stores its config exactly, and
`session show`, `session list`, `round list` and the live lines show versions, their pace and staleness
from the stored version records."""

from rich.console import Console

from scaleout.cli.local import Progress, done_line
from scaleout.cli.tables import async_progress_table
from scaleoututil.helpers.helpers import get_helper
from tests.cli.conftest import as_json, invoke, ok
from tests.fixtures.async_session import add_async_session


def test_session_start_mode_async_stores_the_async_config_exactly(server, tmp_path):
    with server.client() as api:
        api.set_active_model(get_helper("numpyhelper").save([[0.0, 1.0]], str(tmp_path / "seed.npz")))

    output = ok(
        server, "session", "start", "--mode", "async", "--buffer-size", "4", "--max-versions", "40",
        "--max-duration", "600", "--max-concurrency", "8", "--staleness", "polynomial",
        "--staleness-exponent", "0.75", "--max-staleness", "5", "--server-lr", "0.5",
        "--validate-every", "3", "--name", "fedbuff", "--no-wait",
    ).output  # fmt: skip

    session = server.statestore.sessions.get(server.statestore.sessions.list().items[0].id)
    fields = ("mode", "buffer_size", "max_versions", "max_duration", "max_concurrency", "staleness")
    fields += ("staleness_exponent", "max_staleness", "server_lr", "validate_every")
    assert session.config.model_dump(include=set(fields)) == {
        "mode": "async",
        "buffer_size": 4,
        "max_versions": 40,
        "max_duration": 600.0,
        "max_concurrency": 8,
        "staleness": "polynomial",
        "staleness_exponent": 0.75,
        "max_staleness": 5,
        "server_lr": 0.5,
        "validate_every": 3,
    }
    assert f"Session fedbuff ({session.id}) is Started: async: 40 versions or 600 s;" in output


def test_an_async_flag_without_mode_async_is_a_usage_error(server):
    result = invoke(server, "session", "start", "--max-versions", "3", "--server-lr", "2", "--no-wait")

    assert result.exit_code == 2
    assert "--max-versions, --server-lr applies to --mode async only" in result.output


def test_an_async_session_without_an_end_is_refused_saying_what_to_add(server, tmp_path):
    with server.client() as api:
        api.set_active_model(get_helper("numpyhelper").save([[0.0, 1.0]], str(tmp_path / "seed.npz")))

    result = invoke(server, "session", "start", "--mode", "async", "--no-wait")

    assert result.exit_code == 1
    assert "an async session needs max_versions or max_duration (or both) to end" in result.output


def test_session_show_of_an_async_session_has_versions_pace_staleness_and_rejections(server):
    session_id = add_async_session(server.statestore)

    output = ok(server, "session", "show", session_id).output

    lines = output.splitlines()
    pairs = dict(
        (cells[1].strip(), cells[2].strip())
        for cells in (line.split("│") for line in lines)
        if len(cells) == 4
    )
    assert {key: pairs[key] for key in list(pairs)[2:9]} == {
        "versions done": "3/3",
        "versions/min": "9.00",  # 3 versions in 20 s
        "versions/min, last 10": "9.00",
        "updates/version": "2",
        "staleness mean/max": "0.6667/2",
        "staleness histogram": "0:3  1:2  2:1",
        "rejected": "stale 1, timeout 1, update norm 1",
    }
    assert "Versions (validation metrics: mean over clients)" in output
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in lines if line.startswith("│  ")]
    # version, status, updates, staleness min/mean/max, rejected, examples, seconds, model, accuracy:
    # the mean over the clients that validated the version
    assert [row for row in rows if len(row) == 9] == [
        ["1", "Finished", "2", "0/0.00/0", "0", "20", "10.00", "", "0.6000"],
        ["2", "Finished", "2", "0/0.50/1", "1", "20", "5.00", "", ""],
        ["3", "Finished", "2", "1/1.50/2", "1", "20", "5.00", "", "0.8500"],
        ["4", "Running", "1", "0/0.00/0", "1", "10", "", "", ""],
    ]

    report = as_json(server, "session", "show", session_id)
    with server.client() as api:
        assert report["stats"] == api.get_session_stats(session_id)


def test_round_list_of_async_versions_shows_version_numbers_and_staleness(server):
    session_id = add_async_session(server.statestore)

    output = ok(server, "round", "list", "--session-id", session_id).output

    header = next(line for line in output.splitlines() if "status" in line)
    assert header.split("┃")[3].strip() == "version"
    assert "staleness" in output and "min/mean/max" in output
    assert "0/0.50/1" in output and "1/1.50/2" in output


def test_session_list_shows_an_async_sessions_versions_out_of_max_versions(server):
    add_async_session(server.statestore)

    output = ok(server, "session", "list").output

    row = next(line for line in output.splitlines() if "fedbuff" in line)
    assert "3/3" in row and "async" in row


def test_the_live_lines_of_an_async_session_show_its_pace_staleness_and_buffer(server):
    session_id = add_async_session(server.statestore)
    with server.client() as api:
        session, stats = api.get_session(session_id), api.get_session_stats(session_id)
    # the controller's live progress of an async session (controller/progress.py LiveAsync)
    live = {"mode": "async", "version": 3, "buffer_fill": 1, "buffer_size": 2, "in_flight": 4}

    def row(live: dict | None) -> list[str]:
        console = Console(width=200, record=True)
        console.print(async_progress_table("fedbuff", session, stats, live))
        line = next(line for line in console.export_text().splitlines() if line.startswith("│ 3/3"))
        return [cell.strip() for cell in line.split("│")[1:-1]]

    # version, versions/min, last 10, updates/version, staleness mean/max, rejected, buffer, training
    assert row(live) == ["3/3", "9.00", "9.00", "2", "0.6667/2", "3", "1/2", "4"]
    assert row(None)[-2:] == ["", ""]  # no controller runs it: no buffer to show

    piped = done_line({"stage": "session", "session": session, "stats": stats})
    assert piped == "version 3/3 committed: 9.00 versions/min, staleness mean/max 0.6667/2"


def test_piped_progress_prints_every_version_even_when_several_end_between_two_statuses(server, capsys):
    session_id = add_async_session(server.statestore)
    with server.client() as api:
        session, stats = api.get_session(session_id), api.get_session_stats(session_id)
    progress = Progress()
    for done in (0, 1, 1, 3):  # versions 2 and 3 both committed between the last two statuses
        progress.print_line({"stage": "session", "session": {**session, "rounds_done": done}, "stats": stats})

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"session {session_id}: async: 3 versions"
    pace = "9.00 versions/min, staleness mean/max 0.6667/2"
    assert lines[1:] == [f"version {n}/3 committed: {pace}" for n in (1, 2, 3)]


def test_scaleout_local_refuses_an_async_flag_without_mode_async(tmp_path):
    result = invoke(None, "local", str(tmp_path), "--validate-every", "2")

    assert result.exit_code == 2
    assert "--validate-every applies to --mode async only" in result.output
