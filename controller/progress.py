"""The live status of the running round, kept in memory for the API: progress events are too
frequent (one per client update) to write each to the statestore."""

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
