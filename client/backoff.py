"""Exponential backoff with jitter for the client's retries (API assignment, combiner reconnects).

A small helper rather than a dependency: the client's retry loops carry state of their own
(attempts per combiner, re-assignment, shutdown), so all they need from a policy is "how long to
wait next". Jitter spreads the reconnects of many clients whose combiner went away at once, so a
restarted combiner is not hit by all of them in the same millisecond.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# Past this many doublings the delay is long capped anyway; the bound keeps 2**n a float.
_MAX_EXPONENT = 64


@dataclass
class Backoff:
    """Delays that double from ``initial`` up to ``maximum``, each drawn in [cap/2, cap] ("equal jitter").

    Equal jitter keeps a floor of half the cap, so retries never degenerate into a tight loop
    the way full jitter (uniform in [0, cap]) occasionally does.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError(
                f"backoff needs 0 < initial <= maximum and factor >= 1, "
                f"got initial={self.initial}, maximum={self.maximum}, factor={self.factor}"
            )

    def cap(self) -> float:
        """The upper bound of the next delay."""
        return min(self.maximum, self.initial * self.factor ** min(self.attempts, _MAX_EXPONENT))

    def next_delay(self) -> float:
        """The seconds to wait before the next attempt; each call counts one failed attempt."""
        cap = self.cap()
        self.attempts += 1
        return self.rng.uniform(cap / 2, cap)

    def reset(self) -> None:
        """Start over from ``initial``, after an attempt succeeded."""
        self.attempts = 0
