import numpy as np

from scaleout.aggregation.fedadagrad import FedAdagrad
from tests.aggregation.models import run_rounds


def test_fedadagrad_follows_reddi_algorithm_2_over_rounds(tmp_path):
    eta, b1, tau = 0.05, 0.8, 1e-2
    x, means, models = run_rounds(FedAdagrad(server_lr=eta, beta1=b1, tau=tau), tmp_path, rounds=4)
    m = [np.zeros_like(a) for a in x]
    v = [np.full_like(a, tau**2) for a in x]
    for mean, got in zip(means, models, strict=True):
        for i in range(len(x)):
            delta = mean[i] - x[i]
            m[i] = b1 * m[i] + (1 - b1) * delta
            v[i] = v[i] + delta**2
            x[i] = x[i] + eta * m[i] / (np.sqrt(v[i]) + tau)
            np.testing.assert_allclose(got[i], x[i], rtol=0, atol=1e-6)
