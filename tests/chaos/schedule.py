"""A seeded random schedule of faults: which process, what is done to it, when, and for how long.

The schedule is a pure function of its seed and its sizes, so a failing run is replayed exactly (up to the
processes' own timing) by running again with the seed it printed.
"""

import random
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class FaultKind(StrEnum):
    KILL_API = "kill_api"  # kill -9 the API (and its controller), restart it on the same port and stores
    KILL_COMBINER = "kill_combiner"  # kill -9 a combiner, restart it with its name and port
    KILL_CLIENT = "kill_client"  # kill -9 a client, restart it with its id and settings
    PAUSE_CLIENT = "pause_client"  # SIGSTOP a client, SIGCONT it after `downtime`


# Seconds a fault lasts (from the kill or stop to the restart or SIGCONT), drawn uniformly per fault; a
# pause lasts from 3 s to the run's max_pause (long pauses outlive HTTP/2 keepalive and the round).
DOWNTIME: dict[FaultKind, tuple[float, float]] = {
    FaultKind.KILL_API: (0.5, 3.0),
    FaultKind.KILL_COMBINER: (1.0, 5.0),
    FaultKind.KILL_CLIENT: (0.5, 5.0),
}
MIN_PAUSE = 3.0


@dataclass(frozen=True)
class Fault:
    """Inject `kind` on `target` once `after_rounds` rounds have finished plus `delay` seconds.

    A delay of 0 lands between rounds (right after a commit); a longer one lands inside the next round
    (training takes a known time, see package.TRAIN_SECONDS).
    """

    kind: FaultKind
    target: str
    after_rounds: int
    delay: float
    downtime: float

    @property
    def moment(self) -> str:
        return "between rounds" if self.delay == 0 else "inside a round"

    def describe(self) -> str:
        return (
            f"after round {self.after_rounds} + {self.delay:.2f} s ({self.moment}): {self.kind} "
            f"{self.target} for {self.downtime:.1f} s"
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "moment": self.moment}


def make_schedule(
    seed: int,
    rounds: int,
    faults: int,
    clients: list[str],
    combiners: list[str],
    kinds: list[FaultKind] | None = None,
    max_pause: float = 20.0,
) -> list[Fault]:
    """`faults` faults keyed to rounds 1 .. rounds-2, in order; each of `kinds` (default all) at least once
    when there are enough faults.

    Faults are applied one after another (the next waits for the previous recovery), so a round never
    loses more than one process at a time and min_clients stays reachable by design.
    """
    rng = random.Random(seed)
    kinds = list(kinds or FaultKind)
    chosen = kinds[: min(faults, len(kinds))] + [rng.choice(kinds) for _ in range(faults - len(kinds))]
    rng.shuffle(chosen)
    slots = list(range(1, max(2, rounds - 1)))
    keys = sorted(rng.sample(slots, faults) if faults <= len(slots) else rng.choices(slots, k=faults))
    schedule = []
    for kind, after_rounds in zip(chosen, keys, strict=True):
        if kind == FaultKind.KILL_API:
            target = "api"
        elif kind == FaultKind.KILL_COMBINER:
            target = rng.choice(combiners)
        else:
            target = rng.choice(clients)
        delay = 0.0 if rng.random() < 0.3 else round(rng.uniform(0.2, 2.5), 2)
        bounds = (MIN_PAUSE, max_pause) if kind == FaultKind.PAUSE_CLIENT else DOWNTIME[kind]
        downtime = round(rng.uniform(*bounds), 1)
        schedule.append(Fault(kind, target, after_rounds, delay, downtime))
    return schedule
