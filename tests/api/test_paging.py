"""Every list answers one bounded page by default, with the total and the way to the next page; the
APIClient's list methods still read every match, a page at a time."""

import httpx
import pytest

from scaleout import APIClient
from scaleout.api.client import PAGE_SIZE
from scaleout.api.routes_entities import DEFAULT_LIMIT
from scaleout.credentials import issue_client_credential
from scaleout.store.entities import Client, Event
from tests.api.conftest import ApiServer
from tests.api.test_compat import seed_models

TOTAL = DEFAULT_LIMIT * 2 + 50  # two full pages and a short one


@pytest.fixture
def clients(server: ApiServer) -> list[str]:
    """More clients than one page holds, their ids in creation order (the default sort)."""
    return [server.statestore.clients.add(Client(id=f"c{i:04d}", name=f"edge-{i}")).id for i in range(TOTAL)]


def test_a_list_without_a_limit_answers_the_first_page_and_the_total(
    server: ApiServer, http: httpx.Client, clients: list[str]
):
    page = http.get("/clients/").json()

    assert page["count"] == TOTAL
    assert [c["id"] for c in page["result"]] == clients[:DEFAULT_LIMIT]


def test_the_next_pages_are_at_skip_plus_limit_and_the_last_one_is_short(
    http: httpx.Client, clients: list[str]
):
    second = http.get("/clients/", params={"skip": DEFAULT_LIMIT}).json()
    last = http.get("/clients/", params={"skip": 2 * DEFAULT_LIMIT}).json()
    past = http.get("/clients/", params={"skip": TOTAL}).json()

    assert [c["id"] for c in second["result"]] == clients[DEFAULT_LIMIT : 2 * DEFAULT_LIMIT]
    assert [c["id"] for c in last["result"]] == clients[2 * DEFAULT_LIMIT :]
    assert len(last["result"]) == 50
    assert past == {"count": TOTAL, "result": []}


def test_a_limit_and_the_fedn_paging_headers_choose_the_page(http: httpx.Client, clients: list[str]):
    asked = http.get("/clients/", params={"limit": 7, "skip": 3}).json()
    headed = http.get("/clients/", headers={"X-Limit": "5", "X-Skip": "240"}).json()

    assert (asked["count"], [c["id"] for c in asked["result"]]) == (TOTAL, clients[3:10])
    assert (headed["count"], [c["id"] for c in headed["result"]]) == (TOTAL, clients[240:245])


def test_a_limit_above_the_largest_page_is_refused_naming_the_bound(http: httpx.Client, clients: list[str]):
    answer = http.get("/clients/", params={"limit": 10_001})

    assert answer.status_code == 422
    assert "less than or equal to 10000" in answer.text


def test_the_events_statuses_alias_pages_too(server: ApiServer, http: httpx.Client):
    for index in range(DEFAULT_LIMIT + 1):
        server.statestore.events.add(Event(type="t", message=f"event {index}"))

    for path in ("/events/", "/statuses/"):
        page = http.get(path).json()
        assert (page["count"], len(page["result"])) == (DEFAULT_LIMIT + 1, DEFAULT_LIMIT)


def test_client_credentials_are_listed_a_page_at_a_time(
    server: ApiServer, http: httpx.Client, api: APIClient
):
    issued = []
    for index in range(DEFAULT_LIMIT + 20):
        credential, _ = issue_client_credential(f"token-{index}", f"c{index}")
        issued.append(server.statestore.credentials.add(credential).id)

    first = http.get("/clients/tokens").json()
    rest = http.get("/clients/tokens", params={"skip": DEFAULT_LIMIT}).json()

    assert (first["count"], [c["id"] for c in first["result"]]) == (len(issued), issued[:DEFAULT_LIMIT])
    assert [c["id"] for c in rest["result"]] == issued[DEFAULT_LIMIT:]
    assert [c["id"] for c in api.get_client_tokens()["result"]] == issued


def test_the_apiclient_reads_every_page_unless_asked_for_one(server: ApiServer, api: APIClient):
    ids = [server.statestore.events.add(Event(type="t", message=str(i))).id for i in range(PAGE_SIZE + 30)]

    every = api.get_events()
    from_skip = api.get_events(skip=PAGE_SIZE + 10)
    one_page = api.get_events(limit=10, skip=5)

    assert every["count"] == len(ids) and [e["id"] for e in every["result"]] == ids
    assert [e["id"] for e in from_skip["result"]] == ids[PAGE_SIZE + 10 :]
    assert (one_page["count"], [e["id"] for e in one_page["result"]]) == (len(ids), ids[5:15])


@pytest.fixture
def trail(server: ApiServer) -> list[str]:
    """A chain seed -> m1 -> ... -> m150: the last model has 150 ancestors, the seed 150 descendants."""
    return [model.id for model in seed_models(server, TRAIL + 1)]


TRAIL = DEFAULT_LIMIT + 50


def test_the_ancestors_answer_a_page_of_generations_and_the_whole_trails_count(
    http: httpx.Client, trail: list[str]
):
    nearest_first = trail[-2::-1]  # the last model's parent first, the seed last

    first = http.get(f"/models/{trail[-1]}/ancestors").json()
    second = http.get(f"/models/{trail[-1]}/ancestors", params={"skip": DEFAULT_LIMIT}).json()
    with_self = http.get(f"/models/{trail[-1]}/ancestors", params={"include_self": "true", "limit": 2}).json()

    assert (first["count"], [m["id"] for m in first["result"]]) == (TRAIL, nearest_first[:DEFAULT_LIMIT])
    assert (second["count"], [m["id"] for m in second["result"]]) == (TRAIL, nearest_first[DEFAULT_LIMIT:])
    assert (with_self["count"], [m["id"] for m in with_self["result"]]) == (TRAIL + 1, trail[-1:-4:-1])


def test_the_descendants_answer_a_page_oldest_first_and_the_total(http: httpx.Client, trail: list[str]):
    first = http.get(f"/models/{trail[0]}/descendants").json()
    second = http.get(f"/models/{trail[0]}/descendants", params={"skip": DEFAULT_LIMIT}).json()
    headed = http.get(f"/models/{trail[0]}/descendants", headers={"X-Limit": "3", "X-Skip": "10"}).json()

    assert (first["count"], [m["id"] for m in first["result"]]) == (TRAIL, trail[1 : DEFAULT_LIMIT + 1])
    assert (second["count"], [m["id"] for m in second["result"]]) == (TRAIL, trail[DEFAULT_LIMIT + 1 :])
    assert [m["id"] for m in headed["result"]] == trail[11:14]


def test_a_trail_page_above_the_largest_is_refused_naming_the_bound(http: httpx.Client, trail: list[str]):
    for route in ("ancestors", "descendants"):
        answer = http.get(f"/models/{trail[1]}/{route}", params={"limit": 10_001})

        assert answer.status_code == 422
        assert answer.json()["detail"][0]["loc"] == ["query", "limit"]
        assert answer.json()["detail"][0]["msg"] == "Input should be less than or equal to 10000"


def test_the_apiclient_still_walks_the_whole_trail(api: APIClient, trail: list[str]):
    assert [m["id"] for m in api.get_model_trail(trail[-1])] == trail
    assert [m["id"] for m in api.get_model_descendants(trail[0])] == trail[1:]
