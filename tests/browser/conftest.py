"""Browser tests: Playwright drives Debian's Chromium (/usr/bin/chromium, `make chromium`) against a
real federation of processes (API, combiner, clients: tests/e2e/federation.py).

One federation serves the whole package (starting processes is the slow part); every test opens a
fresh browser context. On failure the page's screenshot is kept in .scaleout/browser-artifacts/ (out of
the pytest basetemp, which later runs delete), and its path printed.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scaleoututil.helpers.helpers import get_helper
from tests.e2e.federation import TEST_ENV, Federation, federation, make_package, wait_until

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / ".scaleout" / "browser-artifacts"
# Playwright's own browser download does not work here (and must not be tried): the system Chromium,
# kept from phoning home, without the sandbox that needs user namespaces a container may lack.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update"]
CLIENTS = ("alpha", "beta")
# What every Playwright wait may take on a loaded two-core machine.
WAIT_MS = 60_000

# train adds client_settings["k"] (default 1) to every parameter, and fails on the client named by
# client_settings["fail"]; while client_settings["hold"] names a
# file that does not exist it blocks in round index client_settings["hold_round"], so a test can look at
# a session mid-run, then let it go on by creating the file.
TRAIN = """
import json, os, sys, time
from scaleoututil.helpers.helpers import get_helper, save_metadata

helper = get_helper("numpyhelper")
in_path, out_path = sys.argv[1], sys.argv[2]
with open(in_path + "-metadata") as f:
    task = json.load(f)
settings = task.get("client_settings") or {}
if settings.get("fail") == os.environ["CLIENT_NAME"]:
    sys.exit("the local data of this client is corrupt")
hold = settings.get("hold")
if hold and task.get("round_index") == settings.get("hold_round", 0):
    deadline = time.monotonic() + 300
    while not os.path.exists(hold) and time.monotonic() < deadline:
        time.sleep(0.05)
save_metadata({"num_examples": 10}, out_path)
helper.save([w + float(settings.get("k", 1)) for w in helper.load(in_path)], out_path)
"""

# validate reports the model's mean as "mean" and a per-client "accuracy" in [0, 1].
VALIDATE = """
import os, sys
import numpy as np
from scaleoututil.helpers.helpers import get_helper, save_metrics

weights = get_helper("numpyhelper").load(sys.argv[1])
mean = float(np.mean(weights[0]))
save_metrics({"mean": mean, "accuracy": 0.5 if os.environ["CLIENT_NAME"] == "alpha" else 0.75}, sys.argv[2])
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # The report of each phase on the item, so the page fixture knows at teardown whether the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `make chromium` installs it (Debian's chromium package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page in a fresh context (no token, no storage), 1280 px wide; screenshot kept on failure."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    reports = [getattr(request.node, f"report_{when}", None) for when in ("setup", "call")]
    failed = any(report is not None and report.failed for report in reports)
    if failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"{request.node.name}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"\nbrowser screenshot of the failed test: {shot}\nscript errors: {errors}")
    context.close()
    assert not errors, f"the page raised script errors: {errors}"


@pytest.fixture(scope="package")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """API + one combiner + clients alpha and beta, with a compute package and a seed model uploaded."""
    root = tmp_path_factory.mktemp("browser-federation")
    with federation(root, f"sqlite:///{root}/statestore.db", f"file://{root}/models", TEST_ENV) as fed:
        fed.api.set_active_package(make_package(root, TRAIN, VALIDATE))
        seed = root / "seed.npz"
        get_helper("numpyhelper").save([np.zeros((2, 2), dtype=np.float32)], str(seed))
        fed.api.set_active_model(seed)
        fed.start_combiner()
        for name in CLIENTS:
            fed.start_client(name, extra_env={"CLIENT_NAME": name})
        fed.wait_for_clients(len(CLIENTS))
        yield fed


def dashboard_url(fed: Federation, route: str = "") -> str:
    return f"{fed.api_url}/dashboard/#/{route}"


def start_session(
    fed: Federation, name: str, rounds: int, min_clients: int = len(CLIENTS), **settings: Any
) -> str:
    """Start a session of `rounds` rounds over both clients from the seed (all zeros), so its models'
    means are 1, 2, ...; client_settings reach train.py."""
    seed = fed.api.get_models(sort_key="committed_at", limit=1)["result"][0]["id"]
    return fed.api.start_session(
        name=name, rounds=rounds, min_clients=min_clients, model_id=seed, client_settings=settings
    )


def run_session(fed: Federation, name: str, rounds: int, **settings: Any) -> dict[str, Any]:
    """A finished session of `rounds` rounds over both clients."""
    session = fed.api.wait_for_session(start_session(fed, name, rounds, **settings), 240)
    assert session["status"] == "Finished", session
    return session


def hold_file(fed: Federation, name: str) -> Path:
    return fed.root / f"hold-{name}"


def wait_for_round(fed: Federation, session_id: str, index: int) -> None:
    """Until round `index` (0-based) of the session is running."""

    def running() -> bool:
        rounds = fed.api.get_rounds(session_id=session_id, sort_key="index")["result"]
        return any(r["index"] == index and r["status"] == "Running" for r in rounds)

    wait_until(running, 120, f"round {index + 1} of session {session_id} to start")
