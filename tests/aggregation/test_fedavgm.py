import numpy as np

from scaleout.aggregation.fedavgm import FedAvgM
from tests.aggregation.models import run_rounds


def test_fedavgm_is_server_momentum_over_rounds(tmp_path):
    eta, mu = 0.7, 0.6
    x, means, models = run_rounds(FedAvgM(server_lr=eta, momentum=mu), tmp_path, rounds=4)
    m = [np.zeros_like(a) for a in x]
    for mean, got in zip(means, models, strict=True):
        for i in range(len(x)):
            m[i] = mu * m[i] + (mean[i] - x[i])
            x[i] = x[i] + eta * m[i]
            np.testing.assert_allclose(got[i], x[i], rtol=0, atol=1e-6)


def test_fedavgm_without_momentum_at_rate_one_is_fedavg(tmp_path):
    _, means, models = run_rounds(FedAvgM(server_lr=1.0, momentum=0.0), tmp_path, rounds=2)
    for mean, got in zip(means, models, strict=True):
        for a, b in zip(mean, got, strict=True):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-12)
