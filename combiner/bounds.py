"""Bounds the combiner holds a round to: the settings it is asked to run, and each update's norm.

The round settings obey ``scaleout.round_rules``, the rules the API applies to a session's config at
create time. The norm bound is a session's ``max_update_norm``: the L2 norm of (update - global
model), computed a block at a time over the spooled update and the staged global model, before the
update is folded. An update over the bound is rejected with its norm, or, when the session says
``clip_updates``, scaled down to the bound (global + delta * bound / norm) and averaged in.
"""

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from scaleout import round_rules as rules
from scaleout.aggregation.npzfile import ArraySpec, NpzReader, write_npz_slices
from scaleout.combiner.updates import UpdateRejected
from scaleout.proto import scaleout_pb2 as pb

CLIPPED_SUFFIX = ".clipped.npz"
DP_CLIPPED_SUFFIX = ".dp-clipped.npz"


def round_settings_error(config: pb.RoundConfig) -> str | None:
    """Why the combiner will not run this RoundConfig's settings, naming the field; or None."""
    checks = [
        ("round_timeout", rules.timeout_error(config.round_timeout)),
        ("min_clients", rules.count_error(config.min_clients, 0)),
        ("requested_clients", rules.count_error(config.requested_clients, 0)),
        ("buffer_size", rules.count_error(config.buffer_size, 0)),
    ]
    # Empty names mean the defaults, as for RoundConfigs of older controllers.
    if config.aggregator:
        checks.append(("aggregator", rules.name_error(config.aggregator, rules.AGGREGATORS, "aggregator")))
    if error := rules.aggregator_kwargs_error(config.aggregator or "fedavg", dict(config.aggregator_kwargs)):
        checks.append(("", error))
    if config.helper:
        checks.append(("helper", rules.name_error(config.helper, rules.HELPERS, "helper")))
    if config.max_update_norm:
        checks.append(("max_update_norm", rules.update_norm_error(config.max_update_norm)))
    for field, error in checks:
        if error:
            return f"RoundConfig.{field} {error}" if field else f"RoundConfig.{error}"
    return None


def bound_update(
    update: Path,
    global_model: Path,
    specs: list[ArraySpec],
    max_norm: float,
    clip: bool,
    clipped: Path | None = None,
) -> Path:
    """The file to fold: ``update`` itself when its delta's norm is within ``max_norm``, a clipped copy
    (at ``clipped``, by default beside it) when ``clip`` (the caller deletes it), else UpdateRejected
    stating the norm."""
    norm = delta_norm(update, global_model, len(specs))
    if norm <= max_norm:
        return update
    if not clip:
        raise UpdateRejected(
            f"the update's distance from the global model (L2 norm {norm:.6g}) is above the session's "
            f"max_update_norm of {max_norm:g}; not averaged"
        )
    clipped = clipped or update.with_name(update.stem + CLIPPED_SUFFIX)
    factor = max_norm / norm if math.isfinite(norm) else 0.0
    with NpzReader(update) as new, NpzReader(global_model) as old:
        write_npz_slices(
            clipped,
            ((spec, _clipped(new, old, str(i), spec, factor)) for i, spec in enumerate(specs)),
        )
    return clipped


def delta_norm(update: Path, global_model: Path, count: int) -> float:
    """L2 norm of (update - global model) over every array, in float64, scaled so it does not overflow.

    Keeps (scale, sum of (d / scale)**2) as LAPACK's nrm2 does, so deltas near float64's range give
    a finite norm; a norm beyond float64's range is inf.
    """
    scale, ssq = 0.0, 0.0
    with NpzReader(update) as new, NpzReader(global_model) as old:
        for key in map(str, range(count)):
            for delta in _deltas(new, old, key):
                largest = float(np.abs(delta).max(initial=0.0))
                if largest == 0.0:
                    continue
                if largest > scale:
                    ssq *= (scale / largest) ** 2
                    scale = largest
                delta /= scale
                ssq += float(np.vdot(delta, delta).real)
    return scale * math.sqrt(ssq)


def _deltas(new: NpzReader, old: NpzReader, key: str) -> Iterator[np.ndarray]:
    # Same dtype and shape (checked), so both files yield blocks of the same sizes.
    for x, g in zip(new.slices(key), old.slices(key), strict=True):
        yield np.subtract(x, g, dtype=np.result_type(x.dtype, np.float64))


def _clipped(
    new: NpzReader, old: NpzReader, key: str, spec: ArraySpec, factor: float
) -> Iterator[np.ndarray]:
    for x, g in zip(new.slices(key), old.slices(key), strict=True):
        value = np.subtract(x, g, dtype=np.result_type(x.dtype, np.float64))
        value *= factor
        value += g
        if spec.dtype.kind in "iub":
            np.rint(value, out=value)
        yield value.astype(spec.dtype)
