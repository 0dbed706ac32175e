"""Reduce combiner results into the round's global model: FedAvg across combiners.

Each combiner already averaged its own clients' updates, weighted by their num_examples; weighting
each combiner's model by its total num_examples makes the result exactly the average over all clients
(sum_k N_k * (sum_i n_i x_i / N_k) / sum_k N_k = sum_i n_i x_i / sum_i n_i).
It is the combiner's streaming FedAvg (aggregation/fedavg.py) over the combiners' models: each is
spooled to a temporary file and folded in a slice at a time, and the average is written slice by
slice. Memory is one accumulator the size of the model (float32 for a float32 model) plus a few MiB,
whatever the number of combiners: no model is ever whole in memory.
"""

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from scaleout.aggregation.fedavg import FedAvg
from scaleout.aggregation.npzfile import ArraySpec, read_specs
from scaleout.store.entities import new_id
from scaleout.store.repository import ModelRepository

log = logging.getLogger(__name__)

HELPERS = ("", "numpyhelper")  # the models are numpyhelper npz files, as at the combiner


@dataclass(frozen=True)
class PartialModel:
    """One combiner's aggregate in the repository and its weight."""

    combiner_id: str
    model_id: str
    num_examples: int


def reduce_models(
    repository: ModelRepository,
    parts: Sequence[PartialModel],
    helper_name: str = "numpyhelper",
    work_dir: str | None = None,
) -> str:
    """The id of the weighted average of parts, already in the repository.

    One part is the result as is: its model is not copied. Several are folded in one at a time,
    written under a new id, and then the partial models are deleted. Blocking: call it through
    asyncio.to_thread. Raises ValueError naming the model that does not fit the others.
    """
    if not parts:
        raise ValueError("nothing to reduce: no combiner returned a model")
    if len(parts) == 1:
        return parts[0].model_id
    if helper_name not in HELPERS:
        raise ValueError(f"helper {helper_name!r} is not supported: the reduce averages numpyhelper models")
    for part in parts:
        if part.num_examples <= 0:
            raise ValueError(f"combiner {part.combiner_id} reported num_examples={part.num_examples}")
    with tempfile.TemporaryDirectory(prefix="scaleout-reduce-", dir=work_dir) as tmp:
        fedavg: FedAvg | None = None
        for part in parts:
            # Spooled to a file: npz needs seeking. It goes as soon as it is folded in.
            path = os.path.join(tmp, f"{part.model_id}.npz")
            repository.get_model_to_file(part.model_id, path)
            try:
                specs = read_specs(path)
                if fedavg is None:
                    fedavg = FedAvg(specs)
                else:
                    _check_fits(fedavg.specs, specs, part)
                fedavg.fold(path, part.num_examples)
            finally:
                os.unlink(path)
        assert fedavg is not None
        path = os.path.join(tmp, "reduced.npz")
        fedavg.write(path)
        model_id = new_id()
        repository.put_model(model_id, path)
    discard_models(repository, [p.model_id for p in parts])
    return model_id


def _check_fits(specs: list[ArraySpec], actual: list[ArraySpec], part: PartialModel) -> None:
    """Same arrays and shapes as the first model; a dtype may differ (the fold computes in float64)."""
    if len(actual) != len(specs):
        raise ValueError(
            f"model {part.model_id} of combiner {part.combiner_id} has {len(actual)} arrays, "
            f"the others have {len(specs)}"
        )
    for i, (spec, got) in enumerate(zip(specs, actual, strict=True)):
        if got.shape != spec.shape:
            raise ValueError(
                f"model {part.model_id} of combiner {part.combiner_id}: array {i} has shape "
                f"{got.shape}, the others have {spec.shape}"
            )


def discard_models(repository: ModelRepository, model_ids: Sequence[str]) -> None:
    """Delete partial models that are not part of the trail; a failure only leaves unused bytes."""
    for model_id in model_ids:
        try:
            repository.delete_model(model_id)
        except Exception as err:
            log.warning("could not delete partial model %s: %s", model_id, err)
