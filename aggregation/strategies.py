"""Strategies by name: what a combiner aggregates with and what the controller steps with."""

from collections.abc import Mapping
from pathlib import Path

from scaleout.aggregation.fedadagrad import FedAdagrad
from scaleout.aggregation.fedadam import FedAdam
from scaleout.aggregation.fedavg import FedAvg
from scaleout.aggregation.fedavgm import FedAvgM
from scaleout.aggregation.fedyogi import FedYogi
from scaleout.aggregation.krum import Krum, MultiKrum
from scaleout.aggregation.median import Median
from scaleout.aggregation.npzfile import ArraySpec
from scaleout.aggregation.robust import RobustAggregator
from scaleout.aggregation.strategy import ClientAggregator, ServerOptimizer
from scaleout.aggregation.trimmed_mean import TrimmedMean

ROBUST: dict[str, type[RobustAggregator]] = {
    "median": Median,
    "trimmed_mean": TrimmedMean,
    "krum": Krum,
    "multi_krum": MultiKrum,
}
SERVER_OPTIMIZERS: dict[str, type[ServerOptimizer]] = {
    "fedavgm": FedAvgM,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "fedadagrad": FedAdagrad,
}


def _own(kwargs: Mapping[str, float]) -> dict[str, float]:
    """The strategy's kwargs without the DP options (those are the round's, not the strategy's)."""
    return {k: v for k, v in kwargs.items() if not k.startswith("dp_")}


def client_aggregator(
    name: str, kwargs: Mapping[str, float], specs: list[ArraySpec], work_dir: Path | None = None
) -> ClientAggregator:
    """The combiner's aggregator: a robust rule over kept updates, else the streaming FedAvg
    (server optimizers step at the controller on the mean of every update)."""
    robust = ROBUST.get(name)
    if robust is not None:
        return robust(specs, work_dir, **_own(kwargs))
    return FedAvg(specs)


def server_optimizer(name: str, kwargs: Mapping[str, float]) -> ServerOptimizer | None:
    """The controller's server step, or None (the reduced mean is the model)."""
    optimizer = SERVER_OPTIMIZERS.get(name)
    return None if optimizer is None else optimizer(**_own(kwargs))
