"""`scaleout api start` as a real process: stores opened from URIs, the controller hosted on its loop."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scaleout import APIClient
from scaleoututil.helpers.helpers import get_helper
from tests.e2e.federation import free_port, wait_until

SCALEOUT = str(Path(sys.executable).with_name("scaleout"))


@pytest.fixture
def api_process(tmp_path: Path) -> Iterator[tuple[APIClient, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {
        **os.environ,
        "SCALEOUT_API_PORT": str(port),
        "SCALEOUT_DB": "sqlite:///state/statestore.db",  # relative: its folder is created
        "SCALEOUT_MODELS": "file://models",
    }
    log = (tmp_path / "api.log").open("wb")
    process = subprocess.Popen(
        [SCALEOUT, "api", "start", "--host", "127.0.0.1"], cwd=tmp_path, env=env, stdout=log, stderr=log
    )
    api = APIClient("127.0.0.1", port)
    try:
        # Across a process boundary there is no event to wait on: poll /health, bounded.
        wait_until(lambda: process.poll() is None and api.health()["status"] == "ok", 30, "the API to start")
        yield api, process
    finally:
        api.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(15)
        log.close()
        if process.returncode not in (0, -signal.SIGTERM, None):
            print((tmp_path / "api.log").read_text(), file=sys.stderr)


def test_the_api_process_serves_from_env_configured_stores_and_stops_on_sigterm(api_process, tmp_path: Path):
    api, process = api_process

    assert api.get_sessions() == {"count": 0, "result": []}
    assert (tmp_path / "state" / "statestore.db").is_file()

    process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status reports it.
    assert process.wait(15) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in (tmp_path / "api.log").read_text()


def test_the_hosted_controller_runs_a_started_session_and_wait_returns_its_end(api_process, tmp_path: Path):
    api, _ = api_process
    seed = get_helper("numpyhelper").save([[0.0, 1.0]], str(tmp_path / "seed.npz"))
    api.set_active_model(seed)

    session_id = api.start_session(rounds=1, round_timeout=5, round_retries=0)
    session = api.wait_for_session(session_id, timeout=60)

    # No combiner is running and no retry is allowed, so the controller fails the round at once and says why.
    assert session["status"] == "Failed"
    assert "no combiner" in session["error"]
