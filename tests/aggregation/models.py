"""Random models as npz files, and the server-step driver the optimizer tests share."""

from pathlib import Path

import numpy as np

from scaleout.aggregation.npzfile import read_specs, write_npz
from scaleout.aggregation.server_step import apply_server_step
from scaleout.aggregation.strategy import ServerOptimizer

SHAPES = [(3, 4), (700_001,), (2,)]  # one array larger than a block, so blocks are checked too


def random_model(rng: np.random.Generator, scale: float = 1.0) -> list[np.ndarray]:
    return [rng.normal(0.0, scale, shape) for shape in SHAPES]


def save(path: Path, arrays: list[np.ndarray]) -> Path:
    write_npz(path, arrays)
    return path


def load(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        return [data[str(i)] for i in range(len(data.files))]


def run_rounds(optimizer: ServerOptimizer, tmp: Path, rounds: int, seed: int = 0):
    """(model after each round, the means it was given) for ``rounds`` rounds of random means."""
    rng = np.random.default_rng(seed)
    x = save(tmp / "x0.npz", random_model(rng))
    state = None
    models, means = [], []
    for t in range(rounds):
        mean_arrays = [a + rng.normal(0.0, 0.1, a.shape) for a in load(x)]
        mean = save(tmp / f"mean{t}.npz", mean_arrays)
        out, new_state = tmp / f"x{t + 1}.npz", tmp / f"state{t + 1}.npz"
        apply_server_step(optimizer, x, mean, state, out, new_state)
        assert len(read_specs(new_state)) == len(SHAPES) * len(optimizer.states)
        models.append(load(out))
        means.append(mean_arrays)
        x, state = out, new_state
    return load(tmp / "x0.npz"), means, models
