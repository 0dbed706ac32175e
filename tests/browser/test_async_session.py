"""An async (FedBuff) session on its page, from version records written to the statestore: the pace of
versions, the staleness histogram, the versions table, and the metrics over versions or wall time."""

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from scaleout.store.entities import Model
from tests.api.conftest import run_api
from tests.fixtures.async_session import add_async_session


def card(page: Any, title: str) -> Any:
    return page.locator("section.card", has=page.get_by_role("heading", name=title, exact=True))


def test_an_async_session_shows_its_pace_staleness_and_metrics_over_versions_and_time(
    tmp_path: Path, page: Any
) -> None:
    with run_api(tmp_path / "api") as server:
        store = server.statestore
        session_id = add_async_session(store)
        third = store.rounds.list({"session_id": session_id, "index": 2}).items[0]
        store.models.add(Model(session_id=session_id, round_id=third.id, name="fedbuff version 3"))
        page.goto(f"http://127.0.0.1:{server.port}/dashboard/#/sessions/{session_id}")

        expect(page.locator(".session-meta .rounds-cell")).to_have_text("3 / 3 versions done")
        # no controller runs it here: no live version
        expect(page.locator(".live-slot")).to_contain_text("No version is being built right now")
        pace = card(page, "Asynchronous training")
        expect(pace.locator(".stat-label")).to_have_text(
            [
                "Versions",
                "Versions/s",
                "Last 10",
                "Updates/version",
                "Staleness mean",
                "Staleness max",
                "Rejected",
            ]
        )
        expect(pace.locator(".stat-value")).to_have_text(["3", "0.15 /s", "0.15 /s", "2", "0.6667", "2", "3"])
        expect(pace.locator(".rejected-reasons")).to_have_text(
            "Rejected by reason: stale 1, timeout 1, update norm 1"
        )
        expect(pace.locator(".hist-bar title")).to_have_text(
            ["τ = 0: 3 updates", "τ = 1: 2 updates", "τ = 2: 1 update"], use_inner_text=False
        )

        versions = card(page, "Versions")
        expect(versions.locator("thead th").nth(0)).to_have_text("Version")
        expect(versions.locator("tbody td:first-child")).to_have_text(["1", "2", "3", "4"])
        expect(versions.locator("tbody td:nth-child(4)")).to_have_text(
            ["0 / 0.00 / 0", "0 / 0.50 / 1", "1 / 1.50 / 2", "0 / 0.00 / 0"]
        )

        expect(card(page, "Model trail").locator("tbody tr td").nth(3)).to_contain_text("version 3")

        metrics = card(page, "Validation metrics")
        mean = metrics.locator("figure.chart", has_text="accuracy").locator(".series-mean .point title")
        expect(mean).to_have_text(
            ["mean over clients, version 1: 0.6", "mean over clients, version 3: 0.85"], use_inner_text=False
        )
        metrics.get_by_role("link", name="wall time").click()
        # each validated version at its commit: 10 s and 20 s after the session started
        expect(mean).to_have_text(
            ["mean over clients, 10 s: 0.6", "mean over clients, 20 s: 0.85"], use_inner_text=False
        )
        expect(metrics.locator(".axis-label").first).to_have_text("seconds since the session started")
        expect(metrics.locator(".axis-toggle a.active")).to_have_text("wall time")


def test_the_sessions_list_counts_an_async_sessions_versions(tmp_path: Path, page: Any) -> None:
    with run_api(tmp_path / "api") as server:
        add_async_session(server.statestore)
        page.goto(f"http://127.0.0.1:{server.port}/dashboard/#/sessions")

        row = page.locator("tbody tr", has=page.locator("td", has_text="fedbuff"))
        expect(row.locator(".rounds-cell")).to_have_text("3 / 3 versions")
