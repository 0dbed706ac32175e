"""The live status of the running round or async session, kept in memory for the API: progress
events are too frequent (one per client update) to write each to the statestore."""

import time
from dataclasses import dataclass, field
from typing import Any

from scaleout.proto import scaleout_pb2


@dataclass
class LiveRound:
    """What the running round is doing now, per combiner."""

    session_id: str
    round_id: str
    index: int
    attempt: int
    stage: str = "choosing combiners"
    started: float = field(default_factory=time.monotonic)
    combiners: dict[str, dict[str, Any]] = field(default_factory=dict)

    def update(self, combiner_id: str, progress: scaleout_pb2.RoundProgress) -> None:
        """Keep the latest progress event of a combiner."""
        self.combiners[combiner_id] = {
            "stage": progress.stage,
            "clients_selected": progress.clients_selected,
            "updates_received": progress.updates_received,
            "updates_rejected": progress.updates_rejected,
            "client_id": progress.client_id,
            "message": progress.message,
            "elapsed": progress.elapsed,
        }

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot, with totals over combiners."""
        return {
            "session_id": self.session_id,
            "round_id": self.round_id,
            "index": self.index,
            "attempt": self.attempt,
            "stage": self.stage,
            "elapsed": time.monotonic() - self.started,
            "clients_selected": sum(c["clients_selected"] for c in self.combiners.values()),
            "updates_received": sum(c["updates_received"] for c in self.combiners.values()),
            "updates_rejected": sum(c["updates_rejected"] for c in self.combiners.values()),
            "combiners": {cid: dict(c) for cid, c in self.combiners.items()},
        }


@dataclass
class LiveAsync:
    """What a running async session is doing now: the version being built, its buffer's fill and
    the clients training, per combiner. Keeps the keys of LiveRound the round views read."""

    session_id: str
    version: int  # versions committed so far
    buffer_size: int
    stage: str = "choosing combiners"
    attempt: int = 0
    started: float = field(default_factory=time.monotonic)
    version_started: float = field(default_factory=time.monotonic)
    rejected: int = 0  # updates rejected since the last version
    combiners: dict[str, dict[str, Any]] = field(default_factory=dict)

    def opened(self, combiner_id: str, max_concurrency: int) -> None:
        """A combiner's RunAsync stream is open: its buffer is empty, nothing trains yet."""
        self.combiners[combiner_id] = {
            "max_concurrency": max_concurrency,
            "buffer_fill": 0,
            "in_flight": 0,
            "stage": "started",
            "message": "",
        }

    def update(self, combiner_id: str, progress: scaleout_pb2.RoundProgress) -> None:
        """A combiner's progress event: clients_selected is its clients training now."""
        if (entry := self.combiners.get(combiner_id)) is not None:
            entry.update(in_flight=progress.clients_selected, stage=progress.stage, message=progress.message)

    def fill(self, combiner_id: str, updates: int) -> None:
        if (entry := self.combiners.get(combiner_id)) is not None:
            entry["buffer_fill"] = updates

    def committed(self, version: int) -> None:
        self.version, self.rejected, self.version_started = version, 0, time.monotonic()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot, with totals over combiners."""
        fill = sum(c["buffer_fill"] for c in self.combiners.values())
        in_flight = sum(c["in_flight"] for c in self.combiners.values())
        now = time.monotonic()
        return {
            "mode": "async",
            "session_id": self.session_id,
            "round_id": None,  # a version's record is written when it is committed
            "index": self.version,  # 0-based index of the version being built
            "attempt": self.attempt,
            "stage": self.stage,
            "elapsed": now - self.version_started,
            "session_elapsed": now - self.started,
            "version": self.version,
            "buffer_fill": fill,
            "buffer_size": self.buffer_size,
            "in_flight": in_flight,
            "clients_selected": in_flight,
            "updates_received": fill,
            "updates_rejected": self.rejected,
            "combiners": {cid: dict(c) for cid, c in self.combiners.items()},
        }
