"""CLI tables at 80 and 100 columns (COLUMNS, as when piped): nothing cut or ambiguous, client names
where people read, rounds from 1; --json unchanged."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from scaleout.store.entities import Client as ClientRecord
from scaleout.store.entities import (
    ClientRoundResult,
    Event,
    RejectedUpdate,
    Round,
    Session,
    SessionConfig,
    Validation,
)
from scaleoututil.helpers.helpers import get_helper
from tests.api.conftest import ApiServer
from tests.cli.conftest import as_json, ok

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
CLIENTS = {f"local-client-{i}": f"client-{i}" for i in range(3)}
ERROR = "round 3: 1 update(s) accepted, min_clients is 3; not enough clients reported in time"


@pytest.fixture
def mnist_session(server: ApiServer, tmp_path) -> dict[str, str]:
    """A `scaleout local` run as stored: 3 named clients, 3 rounds (the last Failed), four metrics each."""
    store = server.statestore
    seed = get_helper("numpyhelper").save([[0.0, 1.0]], str(tmp_path / "seed.npz"))
    with server.client() as api:
        seed_id = api.set_active_model(seed)
    session = store.sessions.add(
        Session(
            name="scaleout local",
            status="Failed",
            config=SessionConfig(rounds=3),
            seed_model_id=seed_id,
            rounds_done=2,
            error=f"{ERROR} (round 3 failed after 1 attempt(s))",
            started_at=T0,
            finished_at=T0 + timedelta(seconds=30),
        )
    )
    ids = {"session": session.id, "seed": seed_id}
    for index in range(3):
        failed = index == 2
        round_ = store.rounds.add(
            Round(
                session_id=session.id,
                index=index,
                status="Failed" if failed else "Finished",
                clients=[ClientRoundResult(client_id=c, num_examples=599) for c in CLIENTS][
                    : 1 if failed else 3
                ],
                rejected=[RejectedUpdate(client_id="local-client-2", reason="late")] if failed else [],
                error=ERROR if failed else None,
                started_at=T0 + timedelta(seconds=10 * index),
                finished_at=T0 + timedelta(seconds=10 * index + 4.25),
            )
        )
        ids[f"round{index}"] = round_.id
        if failed:
            continue
        for number, client in enumerate(CLIENTS):
            accuracy = 0.75 + index / 10 + number / 100
            metrics = {"test_accuracy": accuracy, "test_loss": 1 - accuracy}
            metrics |= {"training_accuracy": accuracy + 0.05, "training_loss": 0.95 - accuracy}
            store.validations.add(
                Validation(
                    model_id=seed_id,
                    client_id=client,
                    session_id=session.id,
                    round_id=round_.id,
                    metrics=metrics,
                )
            )
    for client_id, name in CLIENTS.items():
        store.clients.add(ClientRecord(id=client_id, name=name, status="online", combiner_id="combiner"))
    store.events.add(
        Event(
            level="warning",
            type="update_rejected",
            message="late",
            client_id="local-client-2",
            session_id=session.id,
            timestamp=T0 + timedelta(seconds=25),
        )
    )
    return ids


COMMANDS = [
    ["session", "list"],
    ["session", "show", "SESSION"],
    ["round", "list"],
    ["validation", "list"],
    ["model", "list"],
    ["client", "list"],
    ["event", "list"],
]
CUT = re.compile(r"\w…")  # rich's mark of a cell cut short; short ids start with "…" instead
DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def table(server: ApiServer, columns: int, *args: str) -> str:
    return ok(server, *args, env={"COLUMNS": str(columns)}).output


@pytest.mark.parametrize("columns", [80, 100])
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_tables_fit_the_width_and_cut_nothing(server, mnist_session, command, columns):
    args = [mnist_session["session"] if arg == "SESSION" else arg for arg in command]
    output = table(server, columns, *args)

    assert max(len(line.rstrip()) for line in output.splitlines()) <= columns, output
    assert not CUT.search(output), output
    for line in output.splitlines():  # a date is whole on its line, never wrapped
        assert not re.search(r"\d{4}-\d\d-\d\d\s*│", line) or DATE.search(line), output


def rows(output: str) -> list[list[str]]:
    """The table's body rows as cells (lines of │-separated cells)."""
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in output.splitlines() if "│" in line]


def test_validation_list_at_80_columns_names_clients_numbers_rounds_and_wraps_metric_names(
    server, mnist_session
):
    output = table(server, 80, "validation", "list", "--session-id", mnist_session["session"])
    lines = output.splitlines()
    short = f"…{mnist_session['session'][-8:]}"

    assert (
        lines[2].rstrip() == "┃           ┃       ┃          ┃    test_ ┃           ┃ training_ ┃ training_ ┃"
    )
    assert (
        lines[3].rstrip() == "┃ session   ┃ round ┃ client   ┃ accuracy ┃ test_loss ┃  accuracy ┃      loss ┃"
    )
    assert rows(output)[:2] == [
        [short, "1", "client-0", "0.75", "0.25", "0.8", "0.2"],
        [short, "1", "client-1", "0.76", "0.24", "0.81", "0.19"],
    ]
    assert [row[1:3] for row in rows(output)][-1] == ["2", "client-2"]
    assert lines[-1].rstrip() == "left out to fit 80 columns: id, model, created (--json shows every field)"
    assert "local-client" not in output


def test_validation_list_at_100_columns_adds_the_id(server, mnist_session):
    output = table(server, 100, "validation", "list")
    header = output.splitlines()[3]
    assert [cell.strip() for cell in header.split("┃")[1:-1]] == [
        "id", "session", "round", "client", "accuracy", "test_loss", "accuracy", "loss"
    ]  # fmt: skip
    assert output.splitlines()[-1].rstrip() == (
        "left out to fit 100 columns: model, created (--json shows every field)"
    )


def test_round_list_keeps_the_whole_status_and_wraps_only_the_error(server, mnist_session):
    output = table(server, 80, "round", "list", "--session-id", mnist_session["session"])
    body = rows(output)
    assert [row[1:5] for row in body if row[1]] == [
        ["1", "Finished", "3", "0"],
        ["2", "Finished", "3", "0"],
        ["3", "Failed", "1", "1"],
    ]
    error = " ".join(row[-1] for row in body[2:])
    assert error == ERROR


def test_session_show_rounds_table_at_100_columns(server, mnist_session):
    output = table(server, 100, "session", "show", mnist_session["session"])
    rounds = output[output.index("Rounds (validation metrics: mean over clients)") :]
    assert [row[:5] for row in rows(rounds)] == [
        ["1", "Finished", "3", "0", "1797"],
        ["2", "Finished", "3", "0", "1797"],
        ["3", "Failed", "1", "1", "599"],
    ]
    assert rows(rounds)[0][5:] == ["0.7600", "0.2400", "0.8100", "0.1900"]
    assert "left out to fit 100 columns: seconds, model, error (--json shows every field)" in rounds


def test_piped_output_without_columns_is_wide_and_json_is_unchanged(server, mnist_session):
    wide = ok(server, "validation", "list").output  # no COLUMNS: 200 wide, every column
    assert "left out" not in wide and "created" in wide
    with server.client() as api:
        assert as_json(server, "validation", "list") == api.get_validations()
        assert as_json(server, "round", "list") == api.get_rounds()


def test_clients_with_the_same_name_are_told_apart_by_their_short_id(server, mnist_session):
    server.statestore.clients.add(ClientRecord(id="a" * 32, name="client-0"))
    server.statestore.validations.add(
        Validation(model_id=mnist_session["seed"], client_id="a" * 32, metrics={"test_accuracy": 0.5})
    )
    output = table(server, 200, "validation", "list")
    clients = [row[3] for row in rows(output)]
    assert clients.count("client-0 (…aaaaaaaa)") == 1 and "client-0 (…client-0)" not in clients
    assert clients.count("client-0 (local-client-0)") == 2  # its name is no longer unique


def test_event_list_names_the_client(server, mnist_session):
    output = table(
        server, 80, "event", "list", "--session-id", mnist_session["session"], "--level", "warning"
    )
    (row,) = rows(output)
    assert row[1:] == ["warning", "update_rejected", "client-2", "late"]
    assert DATE.fullmatch(row[0])
    with server.client() as api:
        assert as_json(server, "event", "list") == api.get_events()
