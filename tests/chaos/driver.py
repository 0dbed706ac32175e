"""Runs a session on a real federation while applying a fault schedule to its processes.

Faults are keyed to the session's progress as the API reports it (rounds finished) plus a delay in
seconds, so they land between rounds or inside one; each is recovered (restart, SIGCONT) after its
downtime before the next is applied. Every injection is recorded with UTC times for the report.
"""

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from scaleout import APIClient
from scaleout.errors import ScaleoutError
from tests.chaos.package import ClientSpec, write_package, write_seed
from tests.chaos.schedule import Fault, FaultKind
from tests.e2e.federation import Federation

ENDED = {"Finished", "Failed", "Terminated"}
# After the chaos every client must come back and train: probe rounds (each waiting up to
# PROBE_ROUND_TIMEOUT for updates) are run until each client sent one, for up to PROBE_BUDGET seconds:
# enough for a restarted combiner to come up and its clients to reconnect (their backoff caps at 30 s).
PROBE_ROUND_TIMEOUT = 30.0
PROBE_BUDGET = 120.0
PROBE_RETRY = 1.0
POLL_INTERVAL = 0.25  # seconds between progress reads: the processes are across a REST boundary
# Errors of a progress read while the API is down or restarting; the driver reads again later.
UNREACHABLE = (httpx.HTTPError, ScaleoutError, OSError)


@dataclass
class ChaosSettings:
    """Sizes and session configuration of one chaos run; with the seed they define its schedule."""

    seed: int
    rounds: int = 10
    faults: int = 5
    clients: int = 4
    combiners: int = 2
    min_clients: int = 2
    # A round ends at the latest after this; long enough for a paused client (≤ 20 s) to come back.
    round_timeout: float = 30.0
    kinds: list[FaultKind] = field(default_factory=lambda: list(FaultKind))
    max_pause: float = 20.0  # seconds a client may stay SIGSTOPped

    @property
    def session_bound(self) -> float:
        """Seconds the whole session may take: every round at its timeout, plus restarts and slack."""
        return self.rounds * (self.round_timeout + 15.0) + self.faults * self.max_pause + 120.0


@dataclass
class Injection:
    """What happened to one scheduled fault."""

    fault: Fault
    injected_at: datetime | None = None
    recovered_at: datetime | None = None
    rounds_finished_before: int | None = None  # as last read from the API before the injection
    skipped: str | None = None  # why it was not injected
    recovery_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.fault.to_json(),
            "injected_at": self.injected_at.isoformat() if self.injected_at else None,
            "recovered_at": self.recovered_at.isoformat() if self.recovered_at else None,
            "rounds_finished_before": self.rounds_finished_before,
            "skipped": self.skipped,
            "recovery_error": self.recovery_error,
        }


@dataclass
class ChaosDriver:
    """Sets up the federation's package, seed, combiners and clients, then runs the session under faults."""

    fed: Federation
    settings: ChaosSettings
    specs: list[ClientSpec]
    injections: list[Injection] = field(default_factory=list)
    seed_model_id: str = ""
    session_id: str = ""
    deadline: float = 0.0  # time.monotonic() by which the session must have ended
    _paused: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # One short-timeout client for progress reads, reused across API restarts (httpx reconnects).
        token = self.fed.env.get("SCALEOUT_API_TOKEN")
        self.api = APIClient("127.0.0.1", self.fed.api_port, token=token, timeout=10)

    @property
    def combiner_names(self) -> list[str]:
        return [f"combiner-{i}" for i in range(self.settings.combiners)]

    def setup(self) -> None:
        """Package, seed, combiners and clients up; every client online."""
        self.api.set_active_package(write_package(self.fed.root))
        self.seed_model_id = self.api.set_active_model(write_seed(self.fed.root / "seed.npz"))
        for name in self.combiner_names:
            self.fed.start_combiner(name)
        for spec in self.specs:
            self.fed.start_client(spec.name, extra_env=spec.env)
        self.fed.wait_for_clients(len(self.specs))

    def run(self, schedule: list[Fault], log: Callable[[str], None]) -> None:
        """Start the session, apply the schedule, and return once it ended or its bound passed."""
        s = self.settings
        self.session_id = self.api.start_session(
            rounds=s.rounds, round_timeout=s.round_timeout, min_clients=s.min_clients, validate=False
        )
        self.deadline = time.monotonic() + s.session_bound
        try:
            for fault in schedule:
                injection = Injection(fault)
                self.injections.append(injection)
                reached = self._wait_for_rounds(fault.after_rounds, self.deadline)
                if isinstance(reached, str):
                    injection.skipped = reached
                    log(f"[chaos] skipped: {fault.describe()} ({reached})")
                    continue
                injection.rounds_finished_before = reached
                time.sleep(fault.delay)  # the schedule's moment inside or between rounds, not a wait
                self._apply(injection, log)
        finally:
            self.resume_paused()

    def _progress(self) -> tuple[str, int] | None:
        """(session status, rounds finished) as the API reports them; None while it does not answer."""
        try:
            status = self.api.get_session_status(self.session_id)
            finished = self.api.count_entities("rounds", session_id=self.session_id, status="Finished")
        except UNREACHABLE:
            return None
        return status, finished

    def _wait_for_rounds(self, count: int, deadline: float) -> int | str:
        """Rounds finished once at least `count` have; a reason string if the session ended or stalled."""
        stalled = time.monotonic() + 2 * self.settings.round_timeout + 60
        last = -1
        while (now := time.monotonic()) < min(deadline, stalled):
            progress = self._progress()
            if progress is not None:
                status, finished = progress
                if finished >= count:
                    return finished
                if status in ENDED:
                    return f"the session ended {status} after {finished} rounds"
                if finished > last:
                    last, stalled = finished, now + 2 * self.settings.round_timeout + 60
            time.sleep(POLL_INTERVAL)
        return f"no round finished for {2 * self.settings.round_timeout + 60:.0f} s (stuck at {last})"

    def _apply(self, injection: Injection, log: Callable[[str], None]) -> None:
        fault = injection.fault
        process = self.fed.processes[fault.target]
        injection.injected_at = datetime.now(UTC)
        log(f"[chaos] {injection.injected_at:%H:%M:%S.%f} inject: {fault.describe()}")
        if fault.kind == FaultKind.PAUSE_CLIENT:
            os.kill(process.popen.pid, signal.SIGSTOP)
            self._paused.add(fault.target)
        else:
            process.kill()
        time.sleep(fault.downtime)  # how long the process stays down or stopped: the fault itself
        try:
            self._recover(fault)
        except Exception as error:  # recorded for the report; the run goes on to check the invariants
            injection.recovery_error = f"{type(error).__name__}: {error}"
            log(f"[chaos] recovery of {fault.target} failed: {injection.recovery_error}")
        injection.recovered_at = datetime.now(UTC)
        log(f"[chaos] {injection.recovered_at:%H:%M:%S.%f} recovered {fault.target}")

    def _recover(self, fault: Fault) -> None:
        if fault.kind == FaultKind.PAUSE_CLIENT:
            self._continue(fault.target)
        elif fault.kind == FaultKind.KILL_API:
            self.fed.start_api()
        elif fault.kind == FaultKind.KILL_COMBINER:
            self.fed.start_combiner(fault.target, port=self.fed.processes[fault.target].port)
        else:
            spec = next(s for s in self.specs if s.name == fault.target)
            self.fed.start_client(spec.name, extra_env=spec.env)

    def _continue(self, name: str) -> None:
        process = self.fed.processes[name]
        if process.popen.poll() is None:
            os.kill(process.popen.pid, signal.SIGCONT)
        self._paused.discard(name)

    def resume_paused(self) -> None:
        """SIGCONT every client still stopped, so that the federation can stop them cleanly."""
        for name in list(self._paused):
            self._continue(name)

    def wait_for_end(self) -> dict[str, Any] | str:
        """The ended session, or why it could not be read (still running at its bound, API gone)."""
        last_error = ""
        while (remaining := self.deadline - time.monotonic()) > 0:
            try:
                return self.api.wait_for_session(self.session_id, remaining)
            except (*UNREACHABLE, TimeoutError) as error:
                last_error = f"{type(error).__name__}: {error}"
                time.sleep(POLL_INTERVAL)
        return f"the session did not end within its bound ({last_error})"

    def probe(self) -> list[str]:
        """Violations of "every client trains again after the chaos": one-round sessions selecting every
        online client are run until each client has sent an update, for up to PROBE_BUDGET seconds (time to
        reconnect); a client stuck in an old task never sends one.
        """
        untrained = {spec.name for spec in self.specs}
        reasons: dict[str, str] = {}
        probes = 0
        deadline = time.monotonic() + PROBE_BUDGET
        while untrained and time.monotonic() < deadline:
            probes += 1
            session_id = self.api.start_session(
                name="probe", rounds=1, round_timeout=PROBE_ROUND_TIMEOUT, min_clients=1, validate=False
            )
            session = self.api.wait_for_session(session_id, PROBE_ROUND_TIMEOUT + 60)
            for round_ in self.api.get_rounds(session_id=session_id)["result"]:
                untrained -= {c["client_id"] for c in round_["clients"]}
                reasons.update({x["client_id"]: x["reason"] for x in round_["rejected"]})
            if session["status"] != "Finished":
                time.sleep(PROBE_RETRY)  # no client could train yet: give reconnects a moment
        return [
            f"{name} sent no update in {probes} probe round(s) over {PROBE_BUDGET:.0f} s after the chaos"
            + (f" (last rejection: {reasons[name]})" if name in reasons else "")
            for name in sorted(untrained)
        ]

    def close(self) -> None:
        self.api.close()
