"""Reduce combiner results into the round's global model: FedAvg across combiners.

Each combiner already averaged its own clients' updates, weighted by their num_examples; weighting
each combiner's model by its total num_examples makes the result exactly the average over all clients
(sum_k N_k * (sum_i n_i x_i / N_k) / sum_k N_k = sum_i n_i x_i / sum_i n_i).
Memory is one float64 accumulator plus one model at a time, whatever the number of combiners.
"""

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scaleout.store.entities import new_id
from scaleout.store.repository import ModelRepository
from scaleoututil.helpers.helperbase import HelperBase
from scaleoututil.helpers.helpers import get_helper

log = logging.getLogger(__name__)


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

    One part is the result as is: its model is not copied. Several are folded one at a time in
    float64, written under a new id, and then the partial models are deleted. Blocking: call it
    through asyncio.to_thread. Raises ValueError naming the model that does not fit the others.
    """
    if not parts:
        raise ValueError("nothing to reduce: no combiner returned a model")
    if len(parts) == 1:
        return parts[0].model_id
    helper = get_helper(helper_name)
    with tempfile.TemporaryDirectory(prefix="scaleout-reduce-", dir=work_dir) as tmp:
        acc, dtypes, total = _fold_all(repository, parts, helper, tmp)
        average = [_cast(a / total, dtype) for a, dtype in zip(acc, dtypes, strict=True)]
        del acc
        path = helper.save(average, os.path.join(tmp, "reduced.npz"))
        model_id = new_id()
        repository.put_model(model_id, path)
    discard_models(repository, [p.model_id for p in parts])
    return model_id


def _fold_all(
    repository: ModelRepository, parts: Sequence[PartialModel], helper: HelperBase, tmp: str
) -> tuple[list[np.ndarray], list[np.dtype], int]:
    """acc = sum_k n_k * x_k in float64, the first model's dtypes, and sum_k n_k."""
    acc: list[np.ndarray] = []
    dtypes: list[np.dtype] = []
    total = 0
    for part in parts:
        if part.num_examples <= 0:
            raise ValueError(f"combiner {part.combiner_id} reported num_examples={part.num_examples}")
        weights = _load(repository, part.model_id, helper, tmp)
        if not acc:
            acc = [np.zeros(np.shape(w), dtype=np.float64) for w in weights]
            dtypes = [np.asarray(w).dtype for w in weights]
        _check_fits(acc, weights, part)
        for a, w in zip(acc, weights, strict=True):
            # Multiply into float64 before adding: n * w in float32 would round first.
            a += np.multiply(w, part.num_examples, dtype=np.float64)
        total += part.num_examples
        del weights
    return acc, dtypes, total


def _load(repository: ModelRepository, model_id: str, helper: HelperBase, tmp: str) -> list[np.ndarray]:
    """Spool the model to a temp file (npz needs seeking) and read it; the file goes right after."""
    path = os.path.join(tmp, f"{model_id}.npz")
    repository.get_model_to_file(model_id, path)
    try:
        return helper.load(path)
    finally:
        os.unlink(path)


def _check_fits(acc: list[np.ndarray], weights: list[np.ndarray], part: PartialModel) -> None:
    if len(weights) != len(acc):
        raise ValueError(
            f"model {part.model_id} of combiner {part.combiner_id} has {len(weights)} arrays, "
            f"the others have {len(acc)}"
        )
    for i, (a, w) in enumerate(zip(acc, weights, strict=True)):
        if np.shape(w) != a.shape:
            raise ValueError(
                f"model {part.model_id} of combiner {part.combiner_id}: array {i} has shape "
                f"{np.shape(w)}, the others have {a.shape}"
            )


def _cast(average: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Back to the model's dtype; integer parameters are rounded, not truncated."""
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        average = np.rint(average)
    return average.astype(dtype, copy=False)


def discard_models(repository: ModelRepository, model_ids: Sequence[str]) -> None:
    """Delete partial models that are not part of the trail; a failure only leaves unused bytes."""
    for model_id in model_ids:
        try:
            repository.delete_model(model_id)
        except Exception as err:
            log.warning("could not delete partial model %s: %s", model_id, err)
