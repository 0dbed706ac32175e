"""One chaos run end to end: a federation, a seeded fault schedule, the invariants, and the report.

The report (printed, and written as chaos-summary.json in the run's directory) gives the schedule, each
fault with its injection and recovery times and the seconds to the next finished round, counts per kind
of faults injected and survived, and every invariant with its violations.
"""

import json
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from scaleout.store.uri import open_model_repository
from tests.chaos import invariants
from tests.chaos.driver import ChaosDriver, ChaosSettings, Injection
from tests.chaos.package import client_specs
from tests.chaos.schedule import FaultKind, make_schedule
from tests.e2e.federation import federation

REPLAY = (
    ".venv/bin/pytest tests/chaos -s -k '{test}' --chaos-seed {seed} --chaos-kinds {kinds} "
    "--chaos-max-pause {max_pause:g}"
)


@dataclass
class ChaosReport:
    settings: ChaosSettings
    test: str
    root: Path
    injections: list[Injection] = field(default_factory=list)
    invariants: dict[str, list[str]] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    session: dict[str, Any] = field(default_factory=dict)

    @property
    def replay(self) -> str:
        kinds = ",".join(self.settings.kinds)
        settings = self.settings
        return REPLAY.format(test=self.test, seed=settings.seed, kinds=kinds, max_pause=settings.max_pause)

    @property
    def violated(self) -> dict[str, list[str]]:
        return {name: problems for name, problems in self.invariants.items() if problems}

    def _to_next_commit(self, moment: datetime | None) -> float | None:
        """Seconds from moment to the commit of the first round finished after it; None if none did."""
        if moment is None:
            return None
        commits = [
            datetime.fromisoformat(r["finished_at"])
            for r in self.rounds
            if r["status"] == "Finished" and r.get("finished_at")
        ]
        later = [c for c in commits if c > moment]
        return (min(later) - moment).total_seconds() if later else None

    def seconds_to_next_round(self, injection: Injection) -> float | None:
        """From the fault to the next commit: what the fault cost the session."""
        return self._to_next_commit(injection.injected_at)

    def seconds_from_recovery(self, injection: Injection) -> float | None:
        """From the restart (or SIGCONT) to the next commit, e.g. controller restart to the next round."""
        return self._to_next_commit(injection.recovered_at)

    def counts(self) -> dict[str, dict[str, Any]]:
        """Per kind: faults scheduled, injected, survived (a round committed after them, or the session
        finished), and the longest time from such a fault to the next finished round."""
        counts: dict[str, dict[str, Any]] = {
            kind.value: {"scheduled": 0, "injected": 0, "survived": 0, "max_seconds_to_next_round": None}
            for kind in FaultKind
        }
        for injection in self.injections:
            count = counts[injection.fault.kind.value]
            count["scheduled"] += 1
            count["injected"] += injection.injected_at is not None
            seconds = self.seconds_to_next_round(injection)
            count["survived"] += injection.injected_at is not None and (
                seconds is not None or self.session.get("status") == "Finished"
            )
            if seconds is not None:
                count["max_seconds_to_next_round"] = max(seconds, count["max_seconds_to_next_round"] or 0.0)
        return counts

    def totals(self) -> dict[str, int]:
        counts = self.counts().values()
        return {key: sum(c[key] for c in counts) for key in ("scheduled", "injected", "survived")}

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "replay": self.replay,
            "settings": self.settings.__dict__,
            "session": {k: self.session.get(k) for k in ("id", "status", "error", "rounds_done")},
            "faults": [
                {
                    **i.to_json(),
                    "seconds_to_next_finished_round": self.seconds_to_next_round(i),
                    "seconds_from_recovery_to_next_finished_round": self.seconds_from_recovery(i),
                }
                for i in self.injections
            ],
            "counts": self.counts(),
            "totals": self.totals(),
            "rounds": [
                {
                    "index": r["index"],
                    "status": r["status"],
                    "error": r.get("error"),
                    "clients": {c["client_id"]: c["num_examples"] for c in r["clients"]},
                    "rejected": [f"{x['client_id']}: {x['reason']}" for x in r.get("rejected", [])],
                    "started_at": r.get("started_at"),
                    "finished_at": r.get("finished_at"),
                }
                for r in self.rounds
            ],
            "invariants": {name: problems or "held" for name, problems in self.invariants.items()},
        }

    def _outcome(self, injection: Injection) -> str:
        if injection.skipped:
            return f"skipped: {injection.skipped}"
        seconds = self.seconds_to_next_round(injection)
        if seconds is None:
            if self.session.get("status") == "Finished":
                return "no round committed after it: the session had no round left"
            return "no round committed after it"
        after_recovery = self.seconds_from_recovery(injection)
        recovery = f" ({after_recovery:.1f} s after recovery)" if after_recovery is not None else ""
        return f"next round finished {seconds:.1f} s later{recovery}"

    def render(self) -> str:
        lines = [
            f"chaos run {self.test}: seed {self.settings.seed}; replay: {self.replay}",
            f"logs in {self.root / 'logs'}, summary in {self.root / 'chaos-summary.json'}",
        ]
        status = self.session.get("status")
        lines.append(
            f"session {self.session.get('id')}: {status} ({self.session.get('error') or 'no error'})"
        )
        for i in self.injections:
            lines.append(
                f"  {i.fault.describe()}: {self._outcome(i)}"
                + (f"; {i.recovery_error}" if i.recovery_error else "")
            )
        for kind, count in self.counts().items():
            lines.append(
                f"  {kind:14} scheduled {count['scheduled']}  injected {count['injected']}"
                f"  survived {count['survived']}"
                + (
                    f"  (≤ {longest:.1f} s to the next round)"
                    if (longest := count["max_seconds_to_next_round"])
                    else ""
                )
            )
        totals = self.totals()
        lines.append(
            f"  faults: {totals['scheduled']} scheduled, {totals['injected']} injected, "
            f"{totals['survived']} survived"
        )
        for name, problems in self.invariants.items():
            lines.append(f"  invariant {name}: {'held' if not problems else 'VIOLATED'}")
            lines += [f"      - {p}" for p in problems]
        return "\n".join(lines)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_chaos(
    root: Path, db: str, models: str, env: dict[str, str], settings: ChaosSettings, test: str
) -> ChaosReport:
    """Run the session under the seeded schedule, check every invariant, write and print the report."""
    report = ChaosReport(settings, test, root)
    specs = client_specs(settings.clients)
    marker = uuid.uuid4().hex  # in every process we start (and their children), to find leftovers
    with federation(root, db, models, {**env, "CHAOS_RUN_ID": marker}) as fed:
        driver = ChaosDriver(fed, settings, specs)
        schedule = make_schedule(
            settings.seed,
            settings.rounds,
            settings.faults,
            [s.name for s in specs],
            driver.combiner_names,
            settings.kinds,
            settings.max_pause,
        )
        log(f"[chaos] seed {settings.seed} ({report.replay}); schedule:")
        for fault in schedule:
            log(f"[chaos]   {fault.describe()}")
        try:
            driver.setup()
            driver.run(schedule, log)
            report.injections = driver.injections
            ended = driver.wait_for_end()
            check_records(report, driver, models, root / "check")
            if isinstance(ended, str):
                report.invariants["session_finished"].insert(0, ended)
            invariants.check("every_client_trains_after", report.invariants, driver.probe)
        finally:
            driver.resume_paused()
            driver.close()
    report.invariants["no_process_left_behind"] = invariants.leftover_processes(marker)
    (root / "chaos-summary.json").write_text(json.dumps(report.to_json(), indent=2))
    print("\n" + report.render(), flush=True)
    return report


def check_records(report: ChaosReport, driver: ChaosDriver, models: str, scratch: Path) -> None:
    api, settings = driver.api, driver.settings
    specs = {s.name: s for s in driver.specs}
    results = report.invariants
    try:
        records = invariants.read_records(api, driver.session_id, driver.seed_model_id)
    except Exception as error:
        unreadable = [f"the records could not be read: {type(error).__name__}: {error}"]
        for name in (
            "session_finished",
            "one_model_per_round",
            "bytes_and_checksums",
            "round_records",
            "exact_values",
        ):
            results[name] = unreadable
        return
    report.session, report.rounds = records.session, records.rounds
    repository = open_model_repository(models)
    invariants.check(
        "session_finished", results, lambda: invariants.session_finished(records, settings.rounds)
    )
    invariants.check(
        "one_model_per_round", results, lambda: invariants.one_model_per_round(records, settings.rounds)
    )
    invariants.check(
        "bytes_and_checksums", results, lambda: invariants.bytes_and_checksums(records, repository, scratch)
    )
    invariants.check("round_records", results, lambda: invariants.round_records_consistent(records, specs))
    invariants.check("exact_values", results, lambda: invariants.exact_values(records, specs, scratch))
