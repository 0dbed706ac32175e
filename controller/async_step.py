"""An async session's server step: the next version from the latest one and the buffer's mean delta.

The combiners' flushed buffers, reduced by num_examples (reduce.py), give the mean delta
Delta = sum(n_i s(tau_i) (u_i - x_{b_i})) / sum(n_i) over every folded update (FedBuff, Nguyen et al.
AISTATS 2022). With fedavg the next version is x + server_lr * Delta; a server optimizer (fedavgm,
fedadam, ...) steps instead on the mean x + Delta with its state continued, as after a round
(server_step.py). Arrays are computed a block at a time: memory is a few blocks, whatever the model.
"""

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from scaleout.aggregation.blocks import BLOCK, cast
from scaleout.aggregation.npzfile import ArraySpec, TrustedArrays, write_npz_slices
from scaleout.controller.server_step import RoundModel, finish_model, local_file, needs_step
from scaleout.store.entities import Model, SessionConfig, new_id
from scaleout.store.repository import ModelRepository


def next_version(
    repository: ModelRepository,
    config: SessionConfig,
    latest: Model,
    delta_id: str,
    updates: int,
    work_dir: str | None = None,
) -> RoundModel:
    """The next version's model, stored in the repository; the delta is then deleted.

    ``updates`` is the step's number of folded updates. Blocking: call it through asyncio.to_thread.
    Raises ValueError when the delta does not have the latest model's arrays.
    """
    with tempfile.TemporaryDirectory(prefix="scaleout-async-step-", dir=work_dir) as tmp_name:
        tmp = Path(tmp_name)
        latest_path = local_file(repository, latest.id, tmp / "latest.npz")
        delta_path = local_file(repository, delta_id, tmp / "delta.npz")
        out = tmp / "next.npz"
        add_scaled(latest_path, delta_path, config.server_lr, out)
        model_id = new_id()
        repository.put_model_moving(model_id, out)
    repository.delete_model(delta_id)
    if not needs_step(config):
        return RoundModel(model_id)
    # A server optimizer: x + Delta is the mean it steps along (server_lr is 1: the session's check).
    return finish_model(repository, config, latest, model_id, updates, [1.0], work_dir)


def add_scaled(model: Path, delta: Path, scale: float, out: Path) -> None:
    """Write model + scale * delta to ``out`` in the model's dtypes, computed in float64."""
    with TrustedArrays(model) as x, TrustedArrays(delta) as d:
        if [s.shape for s in d.specs] != [s.shape for s in x.specs]:
            raise ValueError(
                f"the buffer's delta has arrays of shapes {[s.shape for s in d.specs]}, the latest "
                f"version {[s.shape for s in x.specs]}"
            )
        write_npz_slices(out, ((spec, _sum(x, d, i, spec, scale)) for i, spec in enumerate(x.specs)))


def _sum(
    x: TrustedArrays, d: TrustedArrays, index: int, spec: ArraySpec, scale: float
) -> Iterator[np.ndarray]:
    work = np.result_type(spec.dtype, np.float64)
    for start in range(0, spec.size, BLOCK):
        count = min(BLOCK, spec.size - start)
        # astype copies: read() may return a view of an array TrustedArrays keeps
        block = x.read(index, start, count).astype(work) + scale * d.read(index, start, count).astype(work)
        yield cast(block, spec.dtype)
