import numpy as np

from scaleout.aggregation.median import Median
from tests.aggregation.robust_helpers import aggregate, random_updates


def test_median_is_the_coordinate_wise_median(tmp_path):
    for count in (5, 6):  # odd and even K
        updates = random_updates(count, seed=count)
        got = aggregate(Median, tmp_path, updates)
        for i, array in enumerate(got):
            expected = np.median(np.stack([u[i] for u in updates]), axis=0)
            np.testing.assert_allclose(array, expected, rtol=0, atol=1e-6)
