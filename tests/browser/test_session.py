"""A session on its page: live while it runs, its plots, rounds numbered from 1, exports, compare."""

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import dashboard_url, hold_file, run_session, start_session, wait_for_round
from tests.e2e.federation import Federation

EN_DASH = "\u2013"  # the pager writes a range of rounds with an en dash, as people do


def chart(page: Any, metric: str) -> Any:
    return page.locator("figure.chart", has=page.locator("figcaption", has_text=metric)).first


def test_a_live_session_gains_a_point_without_a_reload(fed: Federation, page: Any) -> None:
    hold = hold_file(fed, "live")
    session_id = start_session(fed, "live", 3, hold=str(hold), hold_round=1)
    wait_for_round(fed, session_id, 1)  # round 1 validated, round 2 held in train
    page.goto(dashboard_url(fed, f"sessions/{session_id}"))
    expect(page.locator(".live h2")).to_have_text("Round 2 of 3 is running")
    mean = chart(page, "mean").locator(".series-mean .point")
    expect(mean).to_have_count(1)
    page.evaluate("window.sameDocument = true")

    hold.touch()

    expect(mean).to_have_count(3)
    assert page.evaluate("window.sameDocument") is True
    expect(page.locator(".session-header .pill")).to_have_text("Finished")
    # every round numbered from 1, in the table and in the hover of each point
    rounds = page.locator("section.card", has=page.get_by_role("heading", name="Rounds", exact=True))
    expect(rounds.locator("tbody td:first-child")).to_have_text(["1", "2", "3"])
    expect(mean.locator("title")).to_have_text(
        [f"mean over clients, round {n}: {n}" for n in (1, 2, 3)], use_inner_text=False
    )


def test_each_client_is_a_named_series_that_can_be_hidden(fed: Federation, page: Any) -> None:
    session = run_session(fed, "named", 2)
    page.goto(dashboard_url(fed, f"sessions/{session['id']}"))

    accuracy = chart(page, "accuracy")
    expect(accuracy.locator(".legend-item")).to_have_text(["alpha", "beta", "mean over clients"])
    expect(accuracy.locator('[data-series="beta"] .point title')).to_have_text(
        ["beta, round 1: 0.75", "beta, round 2: 0.75"], use_inner_text=False
    )
    beta = accuracy.locator('[data-series="beta"]')
    expect(beta).to_be_visible()
    accuracy.locator(".legend-item", has_text="beta").locator("input").uncheck()
    expect(beta).to_be_hidden()


def test_the_metrics_export_as_csv_and_json(fed: Federation, page: Any, tmp_path: Path) -> None:
    session = run_session(fed, "exported", 2)
    page.goto(dashboard_url(fed, f"sessions/{session['id']}"))

    with page.expect_download() as csv_download:
        page.locator(".export").get_by_role("button", name="CSV").click()
    with page.expect_download() as json_download:
        page.locator(".export").get_by_role("button", name="JSON").click()

    assert csv_download.value.suggested_filename == "exported-metrics.csv"
    csv_path = tmp_path / "metrics.csv"
    csv_download.value.save_as(csv_path)
    assert csv_path.read_text().splitlines() == [
        "round,client,client_id,accuracy,mean",
        "1,alpha,alpha,0.5,1",
        "1,beta,beta,0.75,1",
        "2,alpha,alpha,0.5,2",
        "2,beta,beta,0.75,2",
    ]
    json_path = tmp_path / "metrics.json"
    json_download.value.save_as(json_path)
    exported = json.loads(json_path.read_text())
    assert exported["session_id"] == session["id"]
    assert [(v["round"], v["client"], v["metrics"]) for v in exported["validations"]] == [
        (1, "alpha", {"mean": 1.0, "accuracy": 0.5}),
        (1, "beta", {"mean": 1.0, "accuracy": 0.75}),
        (2, "alpha", {"mean": 2.0, "accuracy": 0.5}),
        (2, "beta", {"mean": 2.0, "accuracy": 0.75}),
    ]


def test_sessions_list_their_final_metrics_and_compare_on_one_plot(fed: Federation, page: Any) -> None:
    first = run_session(fed, "first", 1)
    second = run_session(fed, "second", 2)
    page.goto(dashboard_url(fed, "sessions"))

    for session, mean in ((first, "1"), (second, "2")):
        row = page.locator("tbody tr", has=page.get_by_role("link", name=session["name"], exact=True))
        expect(row.locator(".metric")).to_have_text(["accuracy 0.625", f"mean {mean}"])
        row.get_by_role("checkbox").check()
    page.get_by_role("button", name="Compare selected").click()

    page.get_by_label("metric").select_option("mean")
    plot = page.locator("figure.chart")
    expect(plot.locator(".legend-item")).to_have_text(["first", "second"])
    expect(plot.locator('[data-series="second"] .point title')).to_have_text(
        ["second, round 1: 1", "second, round 2: 2"], use_inner_text=False
    )


def test_a_long_session_pages_its_rounds_and_folds_its_model_trail(fed: Federation, page: Any) -> None:
    session = run_session(fed, "long", 23)
    page.goto(dashboard_url(fed, f"sessions/{session['id']}"))
    rounds = page.locator("section.card", has=page.get_by_role("heading", name="Rounds", exact=True))
    trail = page.locator("section.card", has=page.get_by_role("heading", name="Model trail"))

    expect(rounds.locator("tbody td:first-child")).to_have_text([str(n) for n in range(1, 21)])
    expect(rounds.locator(".pager-range")).to_have_text(f"1{EN_DASH}20 of 23")
    expect(trail.locator(":scope > .table-wrap tbody tr")).to_have_count(20)
    expect(trail.locator("details summary")).to_have_text("3 older models")
    rounds.get_by_role("link", name="Later rounds →").click()

    expect(rounds.locator("tbody td:first-child")).to_have_text(["21", "22", "23"])
    expect(rounds.locator(".pager-range")).to_have_text(f"21{EN_DASH}23 of 23")
