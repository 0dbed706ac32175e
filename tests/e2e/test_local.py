"""`scaleout local`: the embedded federation as a user runs it, a real process with its client processes."""

import os
import queue
import shutil
import signal
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import httpx
import psutil
import pytest

from scaleout.local import listen_socket
from scaleout.store import open_statestore
from scaleout.store.entities import Session, SessionStatus, utcnow
from tests.e2e.federation import SCALEOUT, free_port, wait_until

pytestmark = pytest.mark.timeout(300)

PACKAGE = Path(__file__).resolve().parents[2] / "examples" / "mnist-numpy" / "client"


def local(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    command = [SCALEOUT, "local", str(PACKAGE), "--clients", "2", "--work-dir", str(tmp_path / "work"), *args]
    # An explicit env: inside pytest's process COLUMNS=80 is set at the C level (not in os.environ) and
    # children would inherit it; output piped without COLUMNS is what a user's pipe gets.
    environment = dict(os.environ)
    return subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
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
    # Piped: one line per stage and per round, never the live table's sub-second redraws.
    assert output.count("round 1/2 done") == 1 and output.count("round 2/2 done") == 1, output
    assert "Dashboard: http://127.0.0.1:" in output.splitlines()[1], output
    typed = "scaleout" if shutil.which("scaleout") == SCALEOUT else SCALEOUT  # as the user ran it
    assert (
        f"Next, see it in the dashboard: {typed} api start --work-dir {tmp_path / 'work'}, "
        "then open http://127.0.0.1:8092/ (or run `scaleout local` with --serve)."
    ) in output
    store = open_statestore(f"sqlite:///{tmp_path / 'work' / 'statestore.db'}")
    try:
        (session,) = store.sessions.list().items
        rounds = store.rounds.list({"session_id": session.id}, sort_key="index").items
        assert [r.status for r in rounds] == ["Finished", "Finished"]
        assert store.validations.count({"session_id": session.id}) == 2 * 2
        assert [m.id for m in store.models.ancestors(rounds[-1].model_id).items] == [
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


def test_the_api_port_is_the_preferred_one_when_free_and_another_when_taken() -> None:
    wanted = free_port()
    with listen_socket(wanted) as sock:
        assert sock.getsockname()[1] == wanted
        sock.listen()
        with listen_socket(wanted) as other:  # taken: any free port instead
            assert other.getsockname()[1] not in (wanted, 0)


class Lines:
    """A process's output line by line as it comes, to wait for a line without blocking on the pipe."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self.queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        for line in process.stdout or ():
            self.queue.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> str:
        """The first line (from now on) containing `text`; fails showing the output so far."""
        try:
            while True:
                line = self.queue.get(timeout=timeout)
                self.seen.append(line)
                if text in line:
                    return line
        except queue.Empty:
            raise AssertionError(
                f"no line with {text!r} within {timeout} s:\n" + "\n".join(self.seen)
            ) from None


def serve_command(*args: str, port: int, cwd: Path) -> subprocess.Popen[str]:
    command = [SCALEOUT, *args, "--port", str(port)]
    return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_serve_keeps_the_dashboard_up_and_api_start_reopens_the_folder(tmp_path: Path) -> None:
    """The README's way from `scaleout local` to the dashboard, as real processes."""
    work, port = tmp_path / "work", free_port()
    base = f"http://127.0.0.1:{port}"
    process = local(tmp_path, "--rounds", "1", "--serve", "--port", str(port))
    lines = Lines(process)
    try:
        assert lines.wait_for("Dashboard:", 120) == f"Dashboard: {base}/   API docs: {base}/docs"
        lines.wait_for("round 1/1 done", 240)
        assert (
            lines.wait_for("Serving the dashboard", 60) == f"Serving the dashboard at {base}/ until Ctrl-C."
        )
        # The session has ended and everything is still up.
        (session,) = httpx.get(f"{base}/api/v1/sessions/").json()["result"]
        assert (session["status"], session["rounds_done"]) == ("Finished", 1)
        assert 'src="js/main.js"' in httpx.get(f"{base}/", follow_redirects=True).text
        assert httpx.get(f"{base}/docs").status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "\n".join(lines.seen) + output
    assert not leftover_processes(work)

    api_port = free_port()
    api = serve_command("api", "start", "--work-dir", str(work), port=api_port, cwd=tmp_path)
    combiner = None
    try:
        api_base = f"http://127.0.0.1:{api_port}/api/v1"
        sessions = wait_until(lambda: httpx.get(f"{api_base}/sessions/").json(), 60, "the API to serve")
        assert [s["id"] for s in sessions["result"]] == [session["id"]]
        models = httpx.get(f"{api_base}/models/").json()
        assert models["count"] == 2  # the seed and round 1's model, from the folder's repository
        assert httpx.get(f"{api_base}/models/{models['result'][-1]['id']}/download").status_code == 200

        combiner_port = free_port()
        combiner = serve_command(
            "combiner",
            "start",
            "--work-dir",
            str(work),
            "--name",
            "combiner-2",
            port=combiner_port,
            cwd=tmp_path,
        )
        record = wait_until(
            lambda: httpx.get(f"{api_base}/combiners/combiner-2").json().get("port"),
            60,
            "combiner-2 to register",
        )
        assert record == combiner_port  # registered in the folder's statestore, which the API serves
        assert (work / "combiner" / "combiner-2").is_dir()
    finally:
        for server in (combiner, api):
            if server is not None:
                server.send_signal(signal.SIGTERM)
                server.communicate(timeout=60)
