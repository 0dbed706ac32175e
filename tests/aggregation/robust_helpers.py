"""Running a robust aggregator over random updates written as npz files."""

from pathlib import Path

import numpy as np

from scaleout.aggregation.npzfile import read_specs
from scaleout.aggregation.robust import RobustAggregator
from tests.aggregation.models import load, random_model, save


def aggregate(
    cls: type[RobustAggregator], tmp: Path, updates: list[list[np.ndarray]], **kwargs
) -> list[np.ndarray]:
    paths = [save(tmp / f"u{k}.npz", u) for k, u in enumerate(updates)]
    aggregator = cls(read_specs(paths[0]), tmp, **kwargs)
    try:
        for k, path in enumerate(paths):
            aggregator.fold(path, k + 1)
        assert not any(p.exists() for p in paths)  # moved into the aggregator's directory, not copied
        assert aggregator.total == sum(range(1, len(paths) + 1))
        aggregator.write(tmp / "out.npz")
    finally:
        aggregator.close()
    assert not aggregator._dir.exists()
    return load(tmp / "out.npz")


def random_updates(count: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [random_model(rng) for _ in range(count)]
