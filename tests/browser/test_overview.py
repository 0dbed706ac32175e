"""The overview of a running federation, as a browser renders it."""

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import CLIENTS, dashboard_url
from tests.e2e.federation import Federation


def test_the_overview_lists_the_combiner_and_the_clients_by_name(fed: Federation, page: Any) -> None:
    page.goto(dashboard_url(fed))

    combiners = page.locator("section.card", has=page.get_by_role("heading", name="Combiners", exact=True))
    expect(combiners.locator("tbody tr")).to_have_count(1)
    expect(combiners.locator("tbody tr td").first).to_have_text("combiner")
    clients = page.locator("section.card", has=page.get_by_role("heading", name="Clients", exact=True))
    expect(clients.locator("tbody tr")).to_have_count(len(CLIENTS))
    assert sorted(clients.locator("tbody tr td:first-child").all_inner_texts()) == sorted(CLIENTS)
