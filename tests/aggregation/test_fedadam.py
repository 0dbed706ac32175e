import numpy as np

from scaleout.aggregation.fedadam import FedAdam
from tests.aggregation.models import run_rounds


def test_fedadam_follows_reddi_algorithm_2_over_rounds(tmp_path):
    eta, b1, b2, tau = 0.05, 0.8, 0.95, 1e-2
    x, means, models = run_rounds(FedAdam(server_lr=eta, beta1=b1, beta2=b2, tau=tau), tmp_path, rounds=4)
    m = [np.zeros_like(a) for a in x]
    v = [np.full_like(a, tau**2) for a in x]
    for mean, got in zip(means, models, strict=True):
        for i in range(len(x)):
            delta = mean[i] - x[i]
            m[i] = b1 * m[i] + (1 - b1) * delta
            v[i] = b2 * v[i] + (1 - b2) * delta**2
            x[i] = x[i] + eta * m[i] / (np.sqrt(v[i]) + tau)
            np.testing.assert_allclose(got[i], x[i], rtol=0, atol=1e-6)


def test_fedadam_defaults_are_the_papers():
    adam = FedAdam()
    assert (adam.server_lr, adam.beta1, adam.beta2, adam.tau) == (0.1, 0.9, 0.99, 1e-3)
