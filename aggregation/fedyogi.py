"""FedYogi (Reddi et al. 2021, "Adaptive Federated Optimization", ICLR, Algorithm 2; Yogi: Zaheer et
al. 2018):

    v_t = v_{t-1} - (1 - beta2) * Delta_t**2 * sign(v_{t-1} - Delta_t**2)

with the first moment and step of aggregation/adaptive.py.
"""

import numpy as np

from scaleout.aggregation.adaptive import Adaptive


class FedYogi(Adaptive):
    name = "fedyogi"

    def second_moment(self, v: np.ndarray, square: np.ndarray) -> None:
        sign = np.sign(np.subtract(v, square))
        square *= 1 - self.beta2
        square *= sign
        v -= square
