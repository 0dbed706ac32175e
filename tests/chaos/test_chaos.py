"""Chaos: a session of real processes survives kill -9 of the API, a combiner and clients, and paused
clients, injected by a seeded random schedule between and inside rounds (issue 9).

Each run prints its seed and schedule first and a report last (pytest -s shows both; the report is also
chaos-summary.json in the test's tmp dir); replay a run with --chaos-seed N or SCALEOUT_CHAOS_SEED=N.
"""

from pathlib import Path

import pytest

from tests.chaos.driver import ChaosSettings
from tests.chaos.harness import ChaosReport, run_chaos
from tests.chaos.plugin import fault_kinds
from tests.e2e.federation import TEST_ENV


@pytest.fixture(params=["sqlite", "mongodb"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(statestore URI, model repository URI): SQLite or the MongoDB-wire test server, local files."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models"
    mongo_uri: str = request.getfixturevalue("mongo_uri")
    database: str = request.getfixturevalue("mongo_database")
    return f"{mongo_uri.rstrip('/')}/{database}", f"file://{tmp_path}/models"


def assert_survived(report: ChaosReport) -> None:
    if report.violated:
        pytest.fail(
            f"seed {report.settings.seed} violated {sorted(report.violated)}:\n{report.render()}",
            pytrace=False,
        )


@pytest.mark.timeout(1200)
def test_a_bounded_session_survives_a_seeded_fault_schedule(
    request: pytest.FixtureRequest, tmp_path: Path, stores: tuple[str, str], bounded_seed: int
) -> None:
    """The run in `make test`: 10 rounds, 4 clients on 2 combiners, one fault of each kind and one more."""
    kinds = fault_kinds(request.config)
    max_pause = request.config.getoption("--chaos-max-pause") or 20.0
    settings = ChaosSettings(seed=bounded_seed, rounds=10, faults=5, kinds=kinds, max_pause=max_pause)
    db, models = stores
    report = run_chaos(tmp_path, db, models, TEST_ENV, settings, request.node.name)
    assert_survived(report)


@pytest.mark.timeout(3600)
def test_a_long_session_survives_a_seeded_fault_schedule(
    request: pytest.FixtureRequest, tmp_path: Path, long_seed: int
) -> None:
    """`make chaos`: 30 rounds and 16 faults per seed, on SQLite; pauses up to 90 s, past keepalive."""
    if not request.config.getoption("--chaos-long"):
        pytest.skip("the long chaos run is for `make chaos` (--chaos-long)")
    kinds = fault_kinds(request.config)
    max_pause = request.config.getoption("--chaos-max-pause") or 90.0
    settings = ChaosSettings(seed=long_seed, rounds=30, faults=16, kinds=kinds, max_pause=max_pause)
    db, models = f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models"
    report = run_chaos(tmp_path, db, models, TEST_ENV, settings, request.node.name)
    assert_survived(report)
