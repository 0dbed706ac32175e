"""The read routes of the dashboard's pages: a client's activity, a session's final metrics."""

import httpx

from scaleout.api.routes_dashboard import ROUNDS_PAGE
from scaleout.store.entities import (
    Client,
    ClientRoundResult,
    Event,
    EventLevel,
    RejectedUpdate,
    Round,
    RoundStatus,
    Session,
    Validation,
)
from tests.api.conftest import ApiServer


def add_round(server: ApiServer, session: Session, index: int, joined: list[str], **fields: object) -> Round:
    clients = [ClientRoundResult(client_id=c, num_examples=1) for c in joined]
    round_ = Round(session_id=session.id, index=index, status=RoundStatus.FINISHED, clients=clients, **fields)
    return server.statestore.rounds.add(round_)


def validate(server: ApiServer, round_: Round, client: str, **metrics: object) -> None:
    server.statestore.validations.add(
        Validation(
            model_id="m" * 32,
            client_id=client,
            session_id=round_.session_id,
            round_id=round_.id,
            metrics=metrics,
        )
    )


def test_a_clients_activity_counts_its_rounds_and_names_its_latest_rejection(
    server: ApiServer, http: httpx.Client
):
    server.statestore.clients.add(Client(id="alpha", name="alpha"))
    session = server.statestore.sessions.add(Session(name="s"))
    first = add_round(server, session, 0, ["alpha", "beta"])
    second = add_round(server, session, 1, ["alpha"])
    add_round(server, session, 2, ["beta"], rejected=[RejectedUpdate(client_id="alpha", reason="too large")])

    activity = http.get("/clients/alpha/activity").json()

    assert activity["rounds_joined"] == 2
    assert activity["rounds_scanned"] == 3
    assert activity["last_error"] == "round 3 rejected its update: too large"
    assert activity["round_numbers"][first.id] == 0 and activity["round_numbers"][second.id] == 1


def test_without_a_rejection_the_last_error_is_its_latest_error_event(server: ApiServer, http: httpx.Client):
    server.statestore.clients.add(Client(id="beta"))
    assert http.get("/clients/beta/activity").json()["last_error"] is None
    server.statestore.events.add(Event(level=EventLevel.ERROR, client_id="beta", message="disk full"))
    server.statestore.events.add(Event(level=EventLevel.WARNING, client_id="beta", message="disconnected"))
    server.statestore.events.add(Event(level=EventLevel.ERROR, client_id="other", message="not beta's"))

    assert http.get("/clients/beta/activity").json()["last_error"] == "disk full"


def test_final_metrics_are_the_means_of_the_last_validated_round(server: ApiServer, http: httpx.Client):
    session = server.statestore.sessions.add(Session(name="s"))
    first = add_round(server, session, 0, ["a", "b"])
    second = add_round(server, session, 1, ["a", "b"])
    add_round(server, session, 2, ["a", "b"])  # not validated (yet)
    validate(server, first, "a", accuracy=0.1)
    validate(server, second, "a", accuracy=0.5, loss=2, note="text is skipped")
    validate(server, second, "b", accuracy=0.75, loss=1)

    final = http.get(f"/sessions/{session.id}/final-metrics").json()

    assert final == {"round_index": 1, "metrics": {"accuracy": 0.625, "loss": 1.5}}


def test_the_routes_name_an_id_that_matches_nothing(http: httpx.Client):
    for path in ("/clients/nosuch/activity", "/sessions/nosuch/final-metrics"):
        response = http.get(path)
        assert response.status_code == 404, path
        assert "nosuch" in response.json()["detail"]


def test_final_metrics_are_found_past_a_page_of_unvalidated_rounds(server: ApiServer, http: httpx.Client):
    session = server.statestore.sessions.add(Session(name="s"))
    rounds = [add_round(server, session, index, ["a"]) for index in range(ROUNDS_PAGE + 2)]
    validate(server, rounds[0], "a", loss=0.25)

    final = http.get(f"/sessions/{session.id}/final-metrics").json()

    assert final == {"round_index": 0, "metrics": {"loss": 0.25}}
