"""FedAdagrad (Reddi et al. 2021, "Adaptive Federated Optimization", ICLR, Algorithm 2):

    v_t = v_{t-1} + Delta_t**2

with the first moment and step of aggregation/adaptive.py (beta2 plays no part).
"""

import numpy as np

from scaleout.aggregation.adaptive import Adaptive


class FedAdagrad(Adaptive):
    name = "fedadagrad"

    def __init__(self, server_lr: float = 0.1, beta1: float = 0.9, tau: float = 1e-3) -> None:
        super().__init__(server_lr=server_lr, beta1=beta1, tau=tau)

    def second_moment(self, v: np.ndarray, square: np.ndarray) -> None:
        v += square
