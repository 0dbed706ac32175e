"""Krum and Multi-Krum (Blanchard, El Mhamdi, Guerraoui and Stainer 2017, "Machine Learning with
Adversaries: Byzantine Tolerant Gradient Descent", NeurIPS).

Each update i is scored by the sum of its squared L2 distances to its K - f - 2 nearest other
updates; Krum returns the update with the lowest score, Multi-Krum the unweighted mean of the m
lowest-scored (m = K - f by default). Needs K >= 2f + 3. The K x K distances accumulate a block at a
time (first pass); the selected updates are then averaged a block at a time (second pass).
"""

from pathlib import Path

import numpy as np

from scaleout.aggregation.npzfile import ArraySpec, NpzReader
from scaleout.aggregation.robust import RobustAggregator


def krum_scores(distances: np.ndarray, f: int) -> np.ndarray:
    """Each update's score: the sum of its K - f - 2 smallest squared distances to the others."""
    k = len(distances)
    others = np.sort(distances + np.diag(np.full(k, np.inf)), axis=1)[:, : k - f - 2]
    return others.sum(axis=1)


class MultiKrum(RobustAggregator):
    name = "multi_krum"

    def __init__(
        self, specs: list[ArraySpec], work_dir: Path | None = None, f: float = 1, m: float | None = None
    ) -> None:
        super().__init__(specs, work_dir)
        self.f = int(f)
        self.m = None if m is None else int(m)
        self.selected: np.ndarray | None = None

    def min_updates(self) -> int:
        return 2 * self.f + 3

    def keep(self) -> int:
        return self.m if self.m is not None else self.count - self.f

    def prepare(self, readers: list[NpzReader]) -> None:
        if self.keep() > self.count - self.f:
            raise ValueError(
                f"{self.name}: m={self.keep()} is more than K - f = {self.count - self.f} updates"
            )
        distances = np.zeros((self.count, self.count))
        for index, spec in enumerate(self.specs):
            for stack in self.stacks(readers, index, spec.size):
                stack -= stack[0]  # distances do not change; the Gram form cancels less
                gram = stack @ stack.T
                norms = np.diag(gram)
                distances += norms[:, None] + norms[None, :] - 2 * gram
        np.maximum(distances, 0, out=distances)
        scores = krum_scores(distances, self.f)
        self.selected = np.sort(np.argsort(scores, kind="stable")[: self.keep()])

    def combine(self, stack: np.ndarray) -> np.ndarray:
        assert self.selected is not None
        return stack[self.selected].mean(axis=0)


class Krum(MultiKrum):
    name = "krum"

    def __init__(self, specs: list[ArraySpec], work_dir: Path | None = None, f: float = 1) -> None:
        super().__init__(specs, work_dir, f=f, m=1)
