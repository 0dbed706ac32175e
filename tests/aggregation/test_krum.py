import numpy as np
import pytest

from scaleout.aggregation.krum import Krum, MultiKrum
from tests.aggregation.robust_helpers import aggregate, random_updates


def reference_scores(flat: np.ndarray, f: int) -> np.ndarray:
    k = len(flat)
    scores = []
    for i in range(k):
        d = sorted(float(np.sum((flat[i] - flat[j]) ** 2)) for j in range(k) if j != i)
        scores.append(sum(d[: k - f - 2]))
    return np.array(scores)


def flatten(update: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([a.reshape(-1) for a in update])


def test_krum_picks_the_update_with_the_lowest_score(tmp_path):
    updates = random_updates(7)
    updates[3] = [a * 0.5 for a in updates[3]]  # one clearly central update
    got = aggregate(Krum, tmp_path, updates, f=2)
    best = int(np.argmin(reference_scores(np.stack([flatten(u) for u in updates]), 2)))
    for i, array in enumerate(got):
        np.testing.assert_allclose(array, updates[best][i], rtol=0, atol=1e-6)


def test_multi_krum_averages_the_m_best_scored(tmp_path):
    updates = random_updates(8, seed=3)
    updates[5] = [a + 1e6 for a in updates[5]]  # a Byzantine update is never selected
    got = aggregate(MultiKrum, tmp_path, updates, f=2, m=3)
    scores = reference_scores(np.stack([flatten(u) for u in updates]), 2)
    chosen = np.argsort(scores, kind="stable")[:3]
    assert 5 not in chosen
    for i, array in enumerate(got):
        np.testing.assert_allclose(array, np.mean([updates[c][i] for c in chosen], axis=0), rtol=0, atol=1e-6)


def test_krum_refuses_fewer_than_2f_plus_3_updates(tmp_path):
    with pytest.raises(ValueError, match="krum needs at least 7 updates at a combiner, it has 6"):
        aggregate(Krum, tmp_path, random_updates(6), f=2)
