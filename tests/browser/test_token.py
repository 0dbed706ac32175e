"""An API started with a token: the page asks for it, and works with it, including starting a session.
An empty federation: every hint names a real command, rendered as code."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect

from scaleout.store import open_statestore
from scaleout.store.entities import Model, utcnow
from scaleoututil.helpers.helpers import get_helper
from tests.browser.conftest import TRAIN, VALIDATE, dashboard_url
from tests.e2e.federation import TEST_ENV, Federation, federation, make_package

TOKEN = "browser-admin-token"
START_CLIENT = "scaleout client start"
MODELS_SHOWN = 100  # the models the start form lists (MODELS_SHOWN of api/static/js/pages/sessions.js)


@pytest.fixture
def api_only(tmp_path: Path) -> Iterator[Federation]:
    """An API (with its controller) and nothing else: no combiner, client, package or model."""
    env = {**TEST_ENV, "SCALEOUT_API_TOKEN": TOKEN}
    with federation(tmp_path, f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models", env) as fed:
        yield fed


def test_the_token_form_lets_the_page_in(api_only: Federation, page: Any) -> None:
    page.goto(dashboard_url(api_only))
    form = page.locator("form.token-form")
    expect(page.get_by_role("heading", name="API token required")).to_be_visible()

    form.get_by_placeholder("token").fill("not-the-token")
    form.get_by_role("button", name="Use token").click()
    expect(page.locator(".token-card .error")).to_have_text(
        "The API refused the token in use; enter the one it was started with."
    )
    page.locator("form.token-form").get_by_placeholder("token").fill(TOKEN)
    page.locator("form.token-form").get_by_role("button", name="Use token").click()

    expect(page.locator(".stat-label")).to_have_text(["API", "Sessions", "Models", "Combiners", "Clients"])
    expect(page.get_by_role("button", name="Forget token")).to_be_visible()


def test_a_session_starts_from_the_page_with_the_token(api_only: Federation, page: Any) -> None:
    api_only.api.set_active_package(make_package(api_only.root, TRAIN, VALIDATE))
    seed = api_only.root / "seed.npz"
    get_helper("numpyhelper").save([np.zeros(2, dtype=np.float32)], str(seed))
    seed_id = api_only.api.set_active_model(seed)
    page.goto(dashboard_url(api_only, "sessions"))
    page.locator("form.token-form").get_by_placeholder("token").fill(TOKEN)
    page.locator("form.token-form").get_by_role("button", name="Use token").click()

    page.locator("form.start-form").get_by_label("Name").fill("with-token")
    page.locator("form.start-form").get_by_role("button", name="Start session").click()

    expect(page.locator(".session-header h1")).to_contain_text("with-token")
    (session,) = api_only.api.get_sessions(name="with-token")["result"]
    assert session["seed_model_id"] == seed_id
    # A session without a committed model yet still has its seed: no "No model yet" on its page.
    models = page.locator("section.card", has=page.get_by_role("heading", name="Models", exact=True))
    expect(models.locator("dd").first).to_have_text(seed_id[-8:])
    trail = page.locator("section.card", has=page.get_by_role("heading", name="Model trail"))
    expect(trail.locator(".empty")).to_have_text("No model committed in this session yet.")


def test_the_start_form_offers_a_page_of_the_latest_models_and_any_other_by_id(
    api_only: Federation, page: Any
) -> None:
    api_only.api.set_active_package(make_package(api_only.root, TRAIN, VALIDATE))
    seed = api_only.root / "seed.npz"
    get_helper("numpyhelper").save([np.zeros(2, dtype=np.float32)], str(seed))
    seed_id = api_only.api.set_active_model(seed)
    store = open_statestore(f"sqlite:///{api_only.root}/statestore.db")
    later = utcnow() + timedelta(seconds=1)
    newer = [  # newest first, as the form lists them; the seed is older than all of them
        store.models.add(Model(name=f"m{i:03d}", session_id="s", committed_at=later + timedelta(seconds=i)))
        for i in reversed(range(MODELS_SHOWN + 5))
    ]
    page.goto(dashboard_url(api_only, "sessions"))
    page.locator("form.token-form").get_by_placeholder("token").fill(TOKEN)
    page.locator("form.token-form").get_by_role("button", name="Use token").click()

    form = page.locator("form.start-form")
    listed = form.get_by_label("Start from model")
    expect(listed.locator("option")).to_have_text([m.name for m in newer[:MODELS_SHOWN]])
    expect(listed).to_have_value(newer[0].id)
    expect(form.locator("label.field", has_text="Or a model id").locator("small")).to_have_text(
        f"the list has the latest {MODELS_SHOWN} of {MODELS_SHOWN + 6} models; an id here wins"
    )
    form.get_by_label("Name").fill("from-the-seed")
    form.get_by_label("Or a model id").fill(seed_id)
    form.get_by_role("button", name="Start session").click()

    expect(page.locator(".session-header h1")).to_contain_text("from-the-seed")
    (session,) = api_only.api.get_sessions(name="from-the-seed")["result"]
    assert session["seed_model_id"] == seed_id


@pytest.mark.parametrize(
    ("route", "commands"),
    [
        (
            "",
            [
                "scaleout package upload PATH",
                "scaleout combiner start",
                "scaleout client start --api-url URL",
            ],
        ),
        ("models", ["scaleout model upload PATH"]),
        ("sessions", ["scaleout session start", "scaleout package upload PATH"]),
    ],
)
def test_empty_pages_name_real_commands_as_code(
    api_only: Federation, page: Any, route: str, commands: list[str]
) -> None:
    page.goto(dashboard_url(api_only, route))
    page.locator("form.token-form").get_by_placeholder("token").fill(TOKEN)
    page.locator("form.token-form").get_by_role("button", name="Use token").click()

    expect(page.locator(".empty code")).to_have_text(commands)
    assert "`" not in page.locator("#view").inner_text()
