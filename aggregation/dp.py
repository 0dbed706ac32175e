"""Central differential privacy for the averaging strategies (McMahan, Ramage, Talwar and Zhang 2018,
"Learning Differentially Private Recurrent Language Models", ICLR: DP-FedAvg with the Gaussian
mechanism).

Each client's delta is clipped to L2 norm C at its combiner and the deltas are averaged unweighted
(each client's contribution to the mean is then bounded by C / K, whatever num_examples it claims);
the controller adds N(0, (sigma * C / K)**2) to every parameter of the mean. The privacy spent is
tracked with Google's dp-accounting RDP accountant: one Poisson-sampled Gaussian event per round with
sampling rate q = selected / connected clients, composed over the session's rounds.

Over several combiners the mean is still the unweighted one over all K updates: a combiner folds each
update with weight 1, so the num_examples it reports (its fold's total weight) is its update count K_c,
and the controller's reduce, weighting each combiner's mean by it, gives
sum_c K_c * (sum_{i in c} x_i / K_c) / sum_c K_c = sum_i x_i / K.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaleout.aggregation.blocks import cast
from scaleout.aggregation.npzfile import ArraySpec, NpzReader, read_specs, write_npz_slices

DEFAULT_DELTA = 1e-5


@dataclass(frozen=True)
class DpOptions:
    clip_norm: float  # C
    noise_multiplier: float  # sigma; 0 clips only
    delta: float


def dp_options(kwargs: Mapping[str, float]) -> DpOptions | None:
    """The DP options a session's aggregator_kwargs set, or None (no clipping, no noise)."""
    if not kwargs.get("dp_clip_norm"):
        return None
    return DpOptions(
        clip_norm=float(kwargs["dp_clip_norm"]),
        noise_multiplier=float(kwargs.get("dp_noise_multiplier", 0.0)),
        delta=float(kwargs.get("dp_delta", DEFAULT_DELTA)),
    )


def noise_std(options: DpOptions, updates: int) -> float:
    """The Gaussian noise's standard deviation on the mean of ``updates`` clipped deltas."""
    return options.noise_multiplier * options.clip_norm / updates


def add_noise(source: Path, target: Path, std: float, rng: np.random.Generator) -> None:
    """Write ``source`` plus N(0, std**2) on every parameter to ``target``, a block at a time."""
    specs = read_specs(source)
    with NpzReader(source) as reader:
        write_npz_slices(target, ((spec, _noisy(reader, i, spec, std, rng)) for i, spec in enumerate(specs)))


def _noisy(
    reader: NpzReader, index: int, spec: ArraySpec, std: float, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    for part in reader.slices(str(index)):
        yield cast(part + rng.normal(0.0, std, part.size), spec.dtype)


def epsilon(noise_multiplier: float, sampling_rates: Sequence[float], delta: float) -> float:
    """epsilon spent by rounds with these sampling rates, at ``delta`` (RDP accountant)."""
    # Imported here, not at the top: dp_accounting (with scipy and absl) adds ~80 MB to every process
    # that imports this module, the combiner and the API included, though only DP sessions need it.
    from dp_accounting import dp_event, rdp

    accountant = rdp.RdpAccountant()
    for q in sampling_rates:
        accountant.compose(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(noise_multiplier)))
    return float(accountant.get_epsilon(delta))
