"""Events about clients carry their ids: connected, disconnected, a failed task; the page names them."""

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import CLIENTS, dashboard_url, start_session
from tests.e2e.federation import Federation, wait_until


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
