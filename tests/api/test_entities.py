"""The read side shared by all eight entity families: list with filters, sort and paging; count; get."""

from datetime import timedelta

import httpx
import pytest

from scaleout import APIClient
from scaleout.api.client import APIError
from scaleout.store.entities import (
    Client,
    Combiner,
    Event,
    Model,
    Package,
    Round,
    RoundStatus,
    Session,
    SessionStatus,
    Validation,
    utcnow,
)
from tests.api.conftest import ApiServer

FAMILIES = {
    "sessions": "Session",
    "rounds": "Round",
    "models": "Model",
    "validations": "Validation",
    "clients": "Client",
    "combiners": "Combiner",
    "packages": "Package",
    "events": "Event",
}


def seed_sessions(server: ApiServer) -> list[Session]:
    statuses = ["Finished", "Created", "Finished", "Failed", "Finished"]
    return [
        server.statestore.sessions.add(Session(name=f"s{i}", status=status))
        for i, status in enumerate(statuses)
    ]


def test_listing_filters_on_a_field_and_counts_all_matches_before_paging(server: ApiServer, api: APIClient):
    seed_sessions(server)

    page = api.get_sessions(status="Finished", sort_key="name", sort_order="desc", limit=2, skip=1)

    assert page["count"] == 3
    assert [s["name"] for s in page["result"]] == ["s2", "s0"]


def test_listing_sorts_ascending_by_id_by_default_which_is_creation_order(server: ApiServer, api: APIClient):
    created = seed_sessions(server)

    page = api.get_sessions()

    assert page["count"] == 5
    assert [s["id"] for s in page["result"]] == [s.id for s in created]


def test_several_filters_combine_and_values_are_typed_from_the_entity(server: ApiServer, api: APIClient):
    session = server.statestore.sessions.add(Session(name="a"))
    for index in range(4):
        status = RoundStatus.FINISHED if index < 3 else RoundStatus.FAILED
        server.statestore.rounds.add(Round(session_id=session.id, index=index, status=status))
    server.statestore.rounds.add(Round(session_id="other", index=0, status=RoundStatus.FINISHED))

    assert api.get_rounds(session_id=session.id)["count"] == 4
    finished = api.get_rounds(session_id=session.id, status="Finished", index=2)
    assert [r["index"] for r in finished["result"]] == [2]


def test_count_takes_the_same_filters(server: ApiServer, http: httpx.Client):
    seed_sessions(server)

    assert http.get("/sessions/count").json() == {"count": 5}
    assert http.get("/sessions/count", params={"status": "Finished"}).json() == {"count": 3}


def test_filter_on_a_timestamp_and_a_bool(server: ApiServer, http: httpx.Client):
    when = utcnow() - timedelta(hours=1)
    server.statestore.combiners.add(Combiner(id="c1", name="c1", last_seen=when))
    server.statestore.packages.add(Package(name="p", active=False))

    found = http.get("/combiners/", params={"last_seen": when.isoformat()}).json()
    assert [c["id"] for c in found["result"]] == ["c1"]
    assert http.get("/packages/", params={"active": "false"}).json()["count"] == 1


def test_an_unknown_query_parameter_is_422_naming_it(http: httpx.Client):
    response = http.get("/sessions/", params={"sessionid": "x"})

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "sessionid"]
    assert "unknown query parameter 'sessionid'" in error["msg"]
    assert "status" in error["msg"]  # lists what can be filtered on


def test_a_bad_filter_value_is_422_naming_the_parameter(http: httpx.Client):
    response = http.get("/sessions/", params={"status": "Sleeping"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "status"]


def test_a_sort_key_that_is_not_a_field_is_422(api: APIClient):
    with pytest.raises(APIError) as error:
        api.get_sessions(sort_key="nonsense")

    assert error.value.status_code == 422
    assert "nonsense" in error.value.message


@pytest.mark.parametrize(("family", "noun"), FAMILIES.items())
def test_get_unknown_id_is_404_naming_the_entity(http: httpx.Client, family: str, noun: str):
    response = http.get(f"/{family}/nope")

    assert response.status_code == 404
    assert response.json() == {"detail": f"{noun} 'nope' not found"}


def test_every_family_lists_counts_and_gets_its_records(server: ApiServer, http: httpx.Client):
    store = server.statestore
    records = {
        "sessions": store.sessions.add(Session(name="s")),
        "rounds": store.rounds.add(Round(session_id="s", index=0)),
        "models": store.models.add(Model(name="m")),
        "validations": store.validations.add(Validation(model_id="m", client_id="c", metrics={"acc": 0.5})),
        "clients": store.clients.add(Client(id="client-1", name="client-1")),
        "combiners": store.combiners.add(Combiner(id="combiner", name="combiner", port=12080)),
        "packages": store.packages.add(Package(name="p")),
        "events": store.events.add(Event(type="test", message="hello")),
    }
    for family, record in records.items():
        listing = http.get(f"/{family}/").json()
        assert listing["count"] == 1, family
        assert [item["id"] for item in listing["result"]] == [record.id]
        assert http.get(f"/{family}/count").json() == {"count": 1}
        assert http.get(f"/{family}/{record.id}").json()["id"] == record.id


def test_session_status_reads_as_stored(server: ApiServer, api: APIClient):
    session = server.statestore.sessions.add(Session(name="x", status=SessionStatus.FAILED, error="boom"))

    assert api.get_session_status(session.id) == "Failed"
    assert api.get_session(session.id)["error"] == "boom"
