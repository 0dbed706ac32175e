"""`scaleout local`: the embedded federation as a user runs it, a real process with its client processes."""

import signal
import subprocess
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from scaleout.store import open_statestore
from scaleout.store.entities import Session, SessionStatus, utcnow
from tests.e2e.federation import SCALEOUT, wait_until

pytestmark = pytest.mark.timeout(300)

PACKAGE = Path(__file__).resolve().parents[2] / "examples" / "mnist-numpy" / "client"


def local(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    command = [SCALEOUT, "local", str(PACKAGE), "--clients", "2", "--work-dir", str(tmp_path / "work"), *args]
    return subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def leftover_processes(work_dir: Path) -> list[psutil.Process]:
    """Processes (the clients) still running with this work folder on their command line."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(work_dir) in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


def test_a_local_session_trains_validates_and_prints_the_metrics(tmp_path: Path) -> None:
    process = local(tmp_path, "--rounds", "2")
    output, _ = process.communicate(timeout=240)

    assert process.returncode == 0, output
    assert "Finished (2/2 rounds)" in output and "test_accuracy" in output
    store = open_statestore(f"sqlite:///{tmp_path / 'work' / 'statestore.db'}")
    try:
        (session,) = store.sessions.list().items
        rounds = store.rounds.list({"session_id": session.id}, sort_key="index").items
        assert [r.status for r in rounds] == ["Finished", "Finished"]
        assert store.validations.count({"session_id": session.id}) == 2 * 2
        assert [m.id for m in store.models.ancestors(rounds[-1].model_id)] == [
            rounds[0].model_id,
            session.seed_model_id,
        ]
    finally:
        store.close()
    assert not leftover_processes(tmp_path / "work")


def test_ctrl_c_stops_the_session_and_every_process(tmp_path: Path) -> None:
    process = local(tmp_path, "--rounds", "500")
    database = tmp_path / "work" / "statestore.db"

    def a_round_finished() -> bool:
        store = open_statestore(f"sqlite:///{database}")
        try:
            return store.rounds.count({"status": "Finished"}) >= 1
        finally:
            store.close()

    wait_until(lambda: database.exists() and a_round_finished(), 120, "the first round to finish")
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)

    assert process.returncode == 1, output
    assert "Terminated" in output
    assert not leftover_processes(tmp_path / "work")


def test_a_rerun_after_a_crash_ends_the_session_the_crash_left_started_and_runs_its_own(
    tmp_path: Path,
) -> None:
    store = open_statestore(f"sqlite:///{tmp_path / 'work' / 'statestore.db'}")
    try:
        # Killed a moment ago: its lease has not lapsed, so no controller resumes it on its own.
        lease = {"lease_owner": "gone", "lease_expires": utcnow() + timedelta(hours=1)}
        crashed = store.sessions.add(Session(name="killed run", status=SessionStatus.STARTED, **lease))
    finally:
        store.close()

    process = local(tmp_path, "--rounds", "1", "--no-validate")
    output, _ = process.communicate(timeout=240)

    assert process.returncode == 0, output
    assert "Finished (1/1 rounds)" in output
    store = open_statestore(f"sqlite:///{tmp_path / 'work' / 'statestore.db'}")
    try:
        assert store.sessions.get(crashed.id).status == SessionStatus.TERMINATED
        assert [s.status for s in store.sessions.list({"name": "scaleout local"}).items] == [
            SessionStatus.FINISHED
        ]
    finally:
        store.close()
