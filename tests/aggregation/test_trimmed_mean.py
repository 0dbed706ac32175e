import numpy as np
from scipy import stats

from scaleout.aggregation.trimmed_mean import TrimmedMean
from tests.aggregation.robust_helpers import aggregate, random_updates


def test_trimmed_mean_drops_floor_beta_k_at_each_end(tmp_path):
    updates = random_updates(7)
    got = aggregate(TrimmedMean, tmp_path, updates, beta=0.3)  # k = floor(2.1) = 2 each end
    for i, array in enumerate(got):
        stack = np.sort(np.stack([u[i] for u in updates]), axis=0)
        np.testing.assert_allclose(array, stack[2:5].mean(axis=0), rtol=0, atol=1e-6)
        np.testing.assert_allclose(array, stats.trim_mean(stack, 2 / 7, axis=0), rtol=0, atol=1e-6)
