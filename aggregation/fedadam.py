"""FedAdam (Reddi et al. 2021, "Adaptive Federated Optimization", ICLR, Algorithm 2):

    v_t = beta2 * v_{t-1} + (1 - beta2) * Delta_t**2

with the first moment and step of aggregation/adaptive.py.
"""

import numpy as np

from scaleout.aggregation.adaptive import Adaptive


class FedAdam(Adaptive):
    name = "fedadam"

    def second_moment(self, v: np.ndarray, square: np.ndarray) -> None:
        v *= self.beta2
        square *= 1 - self.beta2
        v += square
