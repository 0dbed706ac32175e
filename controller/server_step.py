"""After the reduce: central DP noise and the server optimizer step, into the round's model.

The reduce (reduce.py) gives the mean of every update of the round. FedAvg and the robust rules
(reduced at the combiners) commit it as it is; an averaging strategy with ``dp_noise_multiplier``
adds N(0, (sigma C / K)**2) to it; a server optimizer (fedavgm, fedadam, ...) steps from the parent
model along Delta = mean - parent, continuing the state stored beside the parent model (a new
session continued from that model, or a resumed one, continues it). The state is stored in the model
repository as ``<model id>.<optimizer>.state`` and named by the Model record (optimizer_state_id).
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaleout.aggregation.dp import add_noise, dp_options, epsilon, noise_std
from scaleout.aggregation.npzfile import read_specs
from scaleout.aggregation.server_step import apply_server_step, fits
from scaleout.aggregation.strategies import server_optimizer
from scaleout.aggregation.strategy import ServerOptimizer
from scaleout.store.entities import Model, SessionConfig, new_id
from scaleout.store.repository import ModelRepository


@dataclass(frozen=True)
class RoundModel:
    """The model a round commits and what its Round and Model records say about how it was made."""

    model_id: str
    optimizer_state_id: str | None = None
    epsilon: float | None = None
    dp_sampling_rate: float | None = None


def state_id(model_id: str, optimizer: ServerOptimizer) -> str:
    return f"{model_id}.{optimizer.name}.state"


def state_owner(object_id: str) -> str:
    """The model whose record names this repository object (itself unless it is optimizer state)."""
    return object_id.split(".", 1)[0] if object_id.endswith(".state") else object_id


def needs_step(config: SessionConfig) -> bool:
    """Whether the reduced mean is not the model as it is (fedavg without DP noise keeps its speed)."""
    options = dp_options(config.aggregator_kwargs)
    noisy = options is not None and options.noise_multiplier > 0
    return noisy or server_optimizer(config.aggregator, config.aggregator_kwargs) is not None


def finish_model(
    repository: ModelRepository,
    config: SessionConfig,
    parent: Model,
    mean_id: str,
    updates: int,
    sampling_rates: list[float],
    work_dir: str | None = None,
) -> RoundModel:
    """The round's model from the reduced mean (which is then deleted), stored in the repository.

    ``updates`` is K, the round's accepted updates; ``sampling_rates`` the session's DP rounds' rates
    so far, this round's last. Blocking: call it through asyncio.to_thread.
    """
    options = dp_options(config.aggregator_kwargs)
    optimizer = server_optimizer(config.aggregator, config.aggregator_kwargs)
    with tempfile.TemporaryDirectory(prefix="scaleout-step-", dir=work_dir) as tmp_name:
        tmp = Path(tmp_name)
        mean = local_file(repository, mean_id, tmp / "mean.npz")
        spent = None
        if options is not None and options.noise_multiplier > 0:
            add_noise(mean, tmp / "noisy.npz", noise_std(options, updates), np.random.default_rng())
            mean = tmp / "noisy.npz"
            spent = epsilon(options.noise_multiplier, sampling_rates, options.delta)
        model_id = new_id()
        state = None
        if optimizer is None:  # then the mean is noisy (needs_step), a file of ours in tmp
            repository.put_model_moving(model_id, mean)
        else:
            state = _step(repository, optimizer, parent, mean, model_id, tmp)
    repository.delete_model(mean_id)
    return RoundModel(model_id, state, spent, sampling_rates[-1] if spent is not None else None)


def local_file(repository: ModelRepository, object_id: str, download: Path) -> Path:
    """The object's file, read in place when the repository is local (a copy costs as much as the
    step), else downloaded to ``download``."""
    path = repository.model_path(object_id)
    if path is None:
        repository.get_model_to_file(object_id, download)
        return download
    return path


def _step(
    repository: ModelRepository,
    optimizer: ServerOptimizer,
    parent: Model,
    mean: Path,
    model_id: str,
    tmp: Path,
) -> str:
    """Step from the parent model and its state; store the model and its state; the state's id."""
    parent_path = local_file(repository, parent.id, tmp / "parent.npz")
    old: Path | None = None
    if parent.optimizer_state_id == state_id(parent.id, optimizer):
        old = local_file(repository, parent.optimizer_state_id, tmp / "old-state.npz")
        if not fits(optimizer, read_specs(parent_path), old):
            old = None  # the model's arrays changed shape: the optimizer starts afresh
    out, new_state = tmp / "model.npz", tmp / "state.npz"
    apply_server_step(optimizer, parent_path, mean, old, out, new_state)
    new_state_id = state_id(model_id, optimizer)
    # The state first: a committed model always has it. Moved in, not copied, when the repository is
    # local and on the work directory's filesystem.
    repository.put_model_moving(new_state_id, new_state)
    repository.put_model_moving(model_id, out)
    return new_state_id
