"""What FedAdagrad, FedAdam and FedYogi share (Reddi et al. 2021, "Adaptive Federated Optimization",
ICLR, Algorithm 2): the first moment and the step; each module gives its second moment v.

    m_t = beta1 * m_{t-1} + (1 - beta1) * Delta_t
    x_{t+1} = x_t + server_lr * m_t / (sqrt(v_t) + tau)

with m_{-1} = 0 and v_{-1} = tau**2 (the paper's v_{-1} >= tau**2), and no bias correction.
Defaults: beta1 = 0.9, beta2 = 0.99 as in the paper's experiments, server_lr = 0.1, tau = 1e-3.
"""

from abc import abstractmethod

import numpy as np

from scaleout.aggregation.strategy import ServerOptimizer


class Adaptive(ServerOptimizer):
    states = ("m", "v")

    def __init__(
        self, server_lr: float = 0.1, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3
    ) -> None:
        self.server_lr = server_lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.tau = tau

    def initial(self, state: str) -> float:
        return 0.0 if state == "m" else self.tau**2

    def update(self, state: str, old: np.ndarray, delta: np.ndarray) -> None:
        # In place, in the formula's order of operations, so the results are the formula's exactly.
        if state == "m":
            old *= self.beta1
            old += np.multiply(delta, 1 - self.beta1)
        else:
            self.second_moment(old, np.multiply(delta, delta))

    @abstractmethod
    def second_moment(self, v: np.ndarray, square: np.ndarray) -> None:
        """Overwrite v_{t-1} with v_t, given Delta_t**2 (a temporary block it may overwrite)."""

    def step(self, new: dict[str, np.ndarray]) -> np.ndarray:
        numerator = np.multiply(new["m"], self.server_lr)
        denominator = np.sqrt(new["v"])
        denominator += self.tau
        numerator /= denominator
        return numerator
