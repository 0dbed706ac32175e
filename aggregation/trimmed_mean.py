"""Coordinate-wise trimmed mean (Yin, Chen, Ramchandran and Bartlett 2018, "Byzantine-Robust
Distributed Learning: Towards Optimal Statistical Rates", ICML): for every parameter, drop the
k = floor(beta * K) largest and k smallest of the K updates' values and average the rest, unweighted.
beta < 0.5 leaves at least one value.
"""

from pathlib import Path

import numpy as np

from scaleout.aggregation.npzfile import ArraySpec
from scaleout.aggregation.robust import RobustAggregator


class TrimmedMean(RobustAggregator):
    name = "trimmed_mean"

    def __init__(self, specs: list[ArraySpec], work_dir: Path | None = None, beta: float = 0.1) -> None:
        super().__init__(specs, work_dir)
        self.beta = beta

    def combine(self, stack: np.ndarray) -> np.ndarray:
        k = int(self.beta * len(stack))
        stack.sort(axis=0)
        return stack[k : len(stack) - k].mean(axis=0)
