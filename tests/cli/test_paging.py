"""List commands show one page and say which records of how many, and the --skip of the next page."""

from scaleout.store.entities import Client, Event
from tests.api.conftest import ApiServer
from tests.cli.conftest import as_json, ok

TOTAL = 150


def add_clients(server: ApiServer) -> None:
    for index in range(TOTAL):
        server.statestore.clients.add(Client(id=f"c{index:04d}", name=f"edge-{index:04d}"))


def test_client_list_shows_the_first_page_and_where_the_next_starts(server: ApiServer):
    add_clients(server)

    output = ok(server, "client", "list").stdout

    assert "edge-0099" in output and "edge-0100" not in output
    assert "clients 1-100 of 150; the next page: --skip 100" in output


def test_the_last_page_says_its_range_without_a_next_page(server: ApiServer):
    add_clients(server)

    output = ok(server, "client", "list", "--skip", "100", "--limit", "100").stdout

    assert "edge-0100" in output and "edge-0149" in output and "edge-0099" not in output
    assert "clients 101-150 of 150" in output and "--skip 150" not in output


def test_a_list_that_fits_one_page_has_no_paging_note(server: ApiServer):
    server.statestore.events.add(Event(type="t", message="only one"))

    output = ok(server, "event", "list").stdout

    assert "only one" in output and " of " not in output


def test_json_is_the_apis_page_with_its_total(server: ApiServer):
    add_clients(server)

    page = as_json(server, "client", "list", "--limit", "3", "--skip", "10")

    assert page["count"] == TOTAL
    assert [c["name"] for c in page["result"]] == ["edge-0010", "edge-0011", "edge-0012"]
