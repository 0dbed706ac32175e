"""Coordinate-wise median (Yin, Chen, Ramchandran and Bartlett 2018, "Byzantine-Robust Distributed
Learning: Towards Optimal Statistical Rates", ICML): every parameter is the median of the K updates'
values of it (the mean of the two middle ones for even K), unweighted.
"""

import numpy as np

from scaleout.aggregation.robust import RobustAggregator


class Median(RobustAggregator):
    name = "median"

    def combine(self, stack: np.ndarray) -> np.ndarray:
        return np.median(stack, axis=0)
