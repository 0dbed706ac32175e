"""Events about clients carry their ids: connected, disconnected, a failed task; the page names them."""

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import CLIENTS, TRAIN, VALIDATE, dashboard_url, start_session
from tests.e2e.federation import TEST_ENV, Federation, federation, make_package, wait_until


def test_connect_and_failed_task_events_name_their_client(fed: Federation, page: Any) -> None:
    session_id = start_session(fed, "beta-fails", 1, min_clients=1, fail="beta")
    assert fed.api.wait_for_session(session_id, 240)["status"] == "Finished"
    connected = fed.api.get_events(type="client_connected")["result"]
    assert sorted(e["client_id"] for e in connected) == sorted(CLIENTS)
    # the combiner's writer stores events off its loop: this one may land just after the session ends
    failed = wait_until(
        lambda: fed.api.get_events(type="task_failed", session_id=session_id)["result"],
        60,
        "the task_failed event",
    )
    assert [(e["client_id"], e["combiner_id"], e["level"]) for e in failed] == [
        ("beta", "combiner", "warning")
    ]
    page.goto(dashboard_url(fed, f"events?session_id={session_id}"))

    row = page.locator("tbody tr", has=page.locator("td", has_text="task_failed"))
    expect(row.locator("td").nth(5)).to_have_text("beta")
    expect(row.locator("td").nth(3)).to_contain_text("task failed on client beta")
    page.goto(dashboard_url(fed, "clients/beta"))
    last_error = page.locator("dd").nth(5)
    expect(last_error).to_contain_text("round 1 rejected its update: task failed on client beta")


def test_a_client_that_stops_leaves_a_disconnected_event(tmp_path: Path, page: Any) -> None:
    db, models = f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models"
    with federation(tmp_path, db, models, TEST_ENV) as own:
        own.api.set_active_package(make_package(tmp_path, TRAIN, VALIDATE))
        own.start_combiner()
        own.start_client("gamma", extra_env={"CLIENT_NAME": "gamma"})
        own.wait_for_clients(1)

        own.processes["gamma"].stop()

        wait_until(
            lambda: own.api.get_events(type="client_disconnected")["result"], 60, "the disconnected event"
        )
        page.goto(dashboard_url(own, "events"))
        rows = page.locator("tbody tr")
        expect(rows.locator("td:nth-child(3)")).to_have_text(["client_disconnected", "client_connected"])
        expect(rows.locator("td:nth-child(4)")).to_have_text(
            ["client gamma disconnected from combiner", "client gamma connected to combiner"]
        )
        expect(rows.locator("td:nth-child(6)")).to_have_text(["gamma", "gamma"])
