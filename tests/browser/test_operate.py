"""Operating the federation from the page: start and stop a session, the clients and combiners pages,
and a layout that holds on a 400 px screen."""

from typing import Any

import pytest
from playwright.sync_api import expect

from scaleout.round_rules import MAX_ROUNDS
from tests.browser.conftest import CLIENTS, dashboard_url, run_session
from tests.e2e.federation import Federation


def seed_id(fed: Federation) -> str:
    return fed.api.get_models(sort_key="committed_at", limit=1)["result"][0]["id"]


def start_form(page: Any) -> Any:
    return page.locator("form.start-form")


def test_a_session_started_and_stopped_from_the_page(fed: Federation, page: Any) -> None:
    page.goto(dashboard_url(fed, "sessions"))
    form = start_form(page)
    form.get_by_label("Name").fill("from-the-page")
    form.get_by_label("Start from model").select_option(seed_id(fed))
    # far more rounds than can run before the stop below
    form.get_by_label("Rounds").fill("500")
    form.get_by_label("Min clients").fill(str(len(CLIENTS)))
    form.get_by_role("button", name="Start session").click()

    expect(page.locator(".session-header h1")).to_contain_text("from-the-page")
    (session,) = fed.api.get_sessions(name="from-the-page")["result"]
    assert page.url.endswith(f"#/sessions/{session['id']}")
    assert (session["config"]["rounds"], session["config"]["min_clients"]) == (500, len(CLIENTS))
    assert session["seed_model_id"] == seed_id(fed)
    page.get_by_role("button", name="Stop session").click()

    expect(page.locator(".session-header .pill")).to_have_text("Terminated")
    assert fed.api.wait_for_session(session["id"], 60)["status"] == "Terminated"


def test_the_start_form_shows_what_the_api_refuses(fed: Federation, page: Any) -> None:
    page.goto(dashboard_url(fed, "sessions"))
    form = start_form(page)
    form.get_by_label("Rounds").fill(str(MAX_ROUNDS + 1))
    form.get_by_role("button", name="Start session").click()

    expect(form.locator(".error")).to_have_text(
        f"config.rounds: Input should be less than or equal to {MAX_ROUNDS}"
    )


def test_the_clients_page_shows_each_client_and_its_history(fed: Federation, page: Any) -> None:
    session = run_session(fed, "history", 2)
    active = fed.api.get_package_checksum()["checksum"]
    page.goto(dashboard_url(fed, "clients"))

    rows = page.locator("tbody tr")
    expect(rows).to_have_count(len(CLIENTS))
    expect(rows.locator("td:nth-child(1)")).to_have_text(list(CLIENTS))
    expect(rows.locator("td:nth-child(2)")).to_have_text(["online"] * len(CLIENTS))
    expect(rows.locator("td:nth-child(3)")).to_have_text(["combiner"] * len(CLIENTS))
    expect(rows.locator("td:nth-child(5)")).to_have_text([f"{active[:12]} active"] * len(CLIENTS))
    page.get_by_role("link", name="alpha", exact=True).click()

    expect(page.locator("h1")).to_contain_text("alpha")
    joined = sum(
        1
        for round_ in fed.api.get_rounds(limit=10000)["result"]
        if any(c["client_id"] == "alpha" for c in round_["clients"])
    )
    expect(page.locator("dd").nth(4)).to_have_text(str(joined))
    history = page.locator("section.card", has=page.get_by_role("heading", name="Metrics history"))
    accuracy = history.locator("figure.chart", has=page.locator("figcaption", has_text="accuracy"))
    expect(accuracy.locator('[data-series="history"] .point title')).to_have_text(
        ["history, round 1: 0.5", "history, round 2: 0.5"], use_inner_text=False
    )
    ours = history.locator("tbody tr", has=page.locator(f'a[title="{session["id"]}"]'))
    expect(ours.locator("td:nth-child(2)")).to_have_text(["1", "2"])
    expect(ours.locator("td:nth-child(3)")).to_have_text(["0.5", "0.5"])


def test_the_combiners_page_lists_the_combiner(fed: Federation, page: Any) -> None:
    page.goto(dashboard_url(fed, "combiners"))

    row = page.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(0)).to_have_text("combiner")
    expect(row.locator("td").nth(1)).to_have_text(f"127.0.0.1:{fed.processes['combiner'].port}")
    expect(row.locator("td").nth(2)).to_have_text("online")
    expect(row.locator("td").nth(5)).to_have_text(str(len(CLIENTS)))


@pytest.mark.parametrize(
    "route", ["", "sessions", "session", "clients", "clients/alpha", "combiners", "models", "events"]
)
def test_the_layout_holds_at_400_px(fed: Federation, page: Any, route: str) -> None:
    if route == "session":
        route = f"sessions/{run_session(fed, 'narrow', 1)['id']}"
    page.set_viewport_size({"width": 400, "height": 800})
    page.goto(dashboard_url(fed, route))
    expect(page.locator("#view > *").first).to_be_visible()

    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths == [400, 400]
