"""The two strategy interfaces, one per tier.

A ``ClientAggregator`` runs at a combiner: it takes the round's checked updates one at a time (as
spooled npz files) and writes their aggregate. A ``ServerOptimizer`` runs at the controller after the
reduce: it turns the pseudo-gradient Delta = (mean of updates) - (global model) into the next global
model, block by block, carrying its state (momentum, moments) from round to round.
"""

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol

import numpy as np

from scaleout.aggregation.npzfile import ArraySpec


class ClientAggregator(Protocol):
    """Aggregates one round's updates at a combiner; calls are serialised by the round."""

    specs: list[ArraySpec]
    total: int  # sum of the weights added (num_examples, or 1 per update in DP mode)
    count: int  # updates added

    def fold(self, path: Path, num_examples: int) -> None:
        """Take a checked update; the file may be moved away (the caller's delete is then a no-op)."""

    def write(self, path: Path) -> None:
        """Write the aggregate as a numpyhelper npz file."""

    def close(self) -> None:
        """Release what the aggregator holds (kept update files); idempotent."""


class ServerOptimizer(ABC):
    """A server step on the pseudo-gradient, elementwise, so it runs over blocks of the model.

    ``states`` names the arrays the optimizer keeps per model array (stored beside the model it
    produced); ``initial`` is their value before the first round.
    """

    name: str
    states: tuple[str, ...]

    @abstractmethod
    def initial(self, state: str) -> float:
        """The value every element of ``state`` starts at."""

    @abstractmethod
    def update(self, state: str, old: np.ndarray, delta: np.ndarray) -> None:
        """Overwrite ``old``, the previous value of ``state``, with its value after this round.

        Blocks in the state's dtype; ``delta`` is left as it is. In place: the block is the new
        state's own buffer, so the step makes fewer block-sized temporaries and copies.
        """

    @abstractmethod
    def step(self, new: dict[str, np.ndarray]) -> np.ndarray:
        """What is added to the global model (a new array), from the states after this round."""
