"""FedAvgM: server momentum on the pseudo-gradient (Hsu, Qi and Brown 2019, "Measuring the Effects of
Non-Identical Data Distribution for Federated Visual Classification"; the FedAvgM baseline of Reddi et
al. 2021, "Adaptive Federated Optimization").

    m_t = momentum * m_{t-1} + Delta_t        x_{t+1} = x_t + server_lr * m_t

with m_{-1} = 0. server_lr = 1 and momentum = 0 is FedAvg.
"""

import numpy as np

from scaleout.aggregation.strategy import ServerOptimizer


class FedAvgM(ServerOptimizer):
    name = "fedavgm"
    states = ("m",)

    def __init__(self, server_lr: float = 1.0, momentum: float = 0.9) -> None:
        self.server_lr = server_lr
        self.momentum = momentum

    def initial(self, state: str) -> float:
        return 0.0

    def update(self, state: str, old: np.ndarray, delta: np.ndarray) -> None:
        old *= self.momentum  # in place, in the formula's order
        old += delta

    def step(self, new: dict[str, np.ndarray]) -> np.ndarray:
        return np.multiply(new["m"], self.server_lr)
