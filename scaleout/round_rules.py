"""The rules a session's round settings obey, defined once for the API and the combiner.

The API applies them to a SessionConfig when a session is created (store/entities.py) and the
combiner to every RoundConfig it is asked to run, so a session the API accepts never fails at its
first round on a setting the combiner refuses. A leaf module: it imports nothing of ours.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

HELPERS = ("numpyhelper",)

MAX_ROUNDS = 100_000
MAX_ROUND_TIMEOUT = 7 * 24 * 3600.0  # a week: longer is a typo, and inf never ends a stuck round
MAX_CLIENTS = 1_000_000  # min_clients, requested_clients, buffer_size; RoundConfig carries uint32
MAX_ROUND_RETRIES = 1_000
MAX_UPDATE_NORM = 1e30  # finite, so a norm computed in float64 can be compared against it
MAX_CLIENT_SETTINGS_BYTES = 64 * 1024  # JSON sent with every train task
MAX_AGGREGATOR_KWARGS = 64
MAX_NAME_CHARS = 200

# Asynchronous (FedBuff) sessions: SessionConfig.mode "async".
MODES = ("sync", "async")
STALENESS = ("constant", "polynomial")  # s(tau) = 1, or (1 + tau) ** -staleness_exponent
MAX_STALENESS_EXPONENT = 10.0
MAX_SERVER_LR = 1e6
DEFAULT_ASYNC_BUFFER_SIZE = 10  # updates per server step when buffer_size is unset (the paper's K)


def short(value: object, limit: int = 80) -> str:
    """repr of a value cut to ``limit`` characters, so an error never echoes a large input back."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def timeout_error(value: float) -> str | None:
    """Why ``value`` is no round timeout (positive, finite, at most MAX_ROUND_TIMEOUT s), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number of seconds, got {short(value)}"
    if not (math.isfinite(value) and 0 < value <= MAX_ROUND_TIMEOUT):
        return f"must be a number of seconds > 0 and <= {MAX_ROUND_TIMEOUT:g}, got {short(value)}"
    return None


def name_error(value: str, known: tuple[str, ...], what: str) -> str | None:
    """Why ``value`` names no known aggregator or helper (``what``), or None."""
    if value in known:
        return None
    return f"{short(value)} is not a known {what}; use one of: {', '.join(known)}"


def update_norm_error(value: float) -> str | None:
    """Why ``value`` is no update norm bound (positive, finite, at most MAX_UPDATE_NORM), or None."""
    if not (math.isfinite(value) and 0 < value <= MAX_UPDATE_NORM):
        return f"must be > 0 and <= {MAX_UPDATE_NORM:g} (the L2 norm of update - global model), got {value!r}"
    return None


def count_error(value: int, low: int, high: int = MAX_CLIENTS) -> str | None:
    """Why ``value`` is not an integer in [low, high], or None."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return f"must be an integer >= {low} and <= {high}, got {short(value)}"
    return None


@dataclass(frozen=True)
class Kwarg:
    """One aggregator kwarg: its default and its valid range (aggregator_kwargs values are floats)."""

    default: float | None  # None: off unless given
    low: float
    high: float = math.inf
    low_open: bool = False  # low itself is out of range
    high_open: bool = False
    integer: bool = False
    meaning: str = ""

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        left = f"> {self.low:g}" if self.low_open else f">= {self.low:g}"
        right = (
            ""
            if math.isinf(self.high)
            else (f" and < {self.high:g}" if self.high_open else f" and <= {self.high:g}")
        )
        return f"{kind} {left}{right}"

    def error(self, value: float) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return f"must be {self.describe()}, got {short(value)}"
        if (
            value < self.low
            or (self.low_open and value == self.low)
            or value > self.high
            or (self.high_open and value == self.high)
            or (self.integer and value != int(value))
        ):
            return f"must be {self.describe()}, got {short(value)}"
        return None


# Central differential privacy (McMahan et al. 2018): options of every averaging strategy.
DP_KWARGS = {
    "dp_clip_norm": Kwarg(
        None, 0, MAX_UPDATE_NORM, low_open=True, meaning="C: L2 bound of each update delta"
    ),
    "dp_noise_multiplier": Kwarg(None, 0, 1e6, meaning="sigma: noise std is sigma * C / K"),
    "dp_delta": Kwarg(
        1e-5, 0, 1, low_open=True, high_open=True, meaning="delta of the (epsilon, delta) reported"
    ),
}
_FEDOPT = {
    "server_lr": Kwarg(0.1, 0, 1e6, low_open=True, meaning="eta: server learning rate"),
    "beta1": Kwarg(0.9, 0, 1, high_open=True, meaning="first-moment decay"),
    "tau": Kwarg(
        1e-3, 0, 1e6, low_open=True, meaning="adaptivity: v starts at tau**2, step divides by sqrt(v)+tau"
    ),
}
_BETA2 = {"beta2": Kwarg(0.99, 0, 1, high_open=True, meaning="second-moment decay")}
_KRUM_F = {
    "f": Kwarg(1, 0, MAX_CLIENTS, integer=True, meaning="Byzantine clients tolerated; needs K >= 2f + 3")
}

# Every aggregator a session can name and its kwargs; the combiner and controller implement them
# in scaleout.aggregation (one module each), and extend together with this table.
AGGREGATOR_KWARGS: dict[str, dict[str, Kwarg]] = {
    "fedavg": {**DP_KWARGS},
    "fedavgm": {
        "server_lr": Kwarg(1.0, 0, 1e6, low_open=True, meaning="eta: server learning rate"),
        "momentum": Kwarg(0.9, 0, 1, high_open=True, meaning="server momentum"),
        **DP_KWARGS,
    },
    "fedadam": {**_FEDOPT, **_BETA2, **DP_KWARGS},
    "fedyogi": {**_FEDOPT, **_BETA2, **DP_KWARGS},
    "fedadagrad": {**_FEDOPT, **DP_KWARGS},
    "median": {},
    "trimmed_mean": {"beta": Kwarg(0.1, 0, 0.5, high_open=True, meaning="fraction trimmed at each end")},
    "krum": {**_KRUM_F},
    "multi_krum": {
        **_KRUM_F,
        "m": Kwarg(None, 1, MAX_CLIENTS, integer=True, meaning="updates averaged; default K - f"),
    },
}
AGGREGATORS = tuple(AGGREGATOR_KWARGS)
ROBUST = ("median", "trimmed_mean", "krum", "multi_krum")  # reduced at the combiner over spooled updates


def kwargs_with_defaults(aggregator: str, kwargs: Mapping[str, float]) -> dict[str, float | None]:
    """The aggregator's kwargs: the given ones over the defaults (None: off)."""
    return {name: kwargs.get(name, spec.default) for name, spec in AGGREGATOR_KWARGS[aggregator].items()}


def aggregator_kwargs_error(aggregator: str, kwargs: Mapping[str, float], min_clients: int = 0) -> str | None:
    """Why ``kwargs`` do not suit ``aggregator`` (an unknown name, a value out of range), or None.

    ``min_clients``, when known, is the fewest updates a round aggregates: Krum needs 2f + 3 of them.
    The message starts with the kwarg's field name, so the API and the combiner can both report it.
    """
    known = AGGREGATOR_KWARGS.get(aggregator)
    if known is None:
        return None  # the aggregator's own check names it
    for name, value in kwargs.items():
        spec = known.get(name)
        if spec is None:
            valid = ", ".join(known) or "none"
            return f"aggregator_kwargs: {short(name)} is not a kwarg of {aggregator}; its kwargs are: {valid}"
        if error := spec.error(value):
            return f"aggregator_kwargs.{name} {error} ({spec.meaning})"
    if "dp_noise_multiplier" in kwargs and "dp_clip_norm" not in kwargs:
        return (
            "aggregator_kwargs.dp_clip_norm is required with dp_noise_multiplier: noise is scaled to the clip"
        )
    if aggregator in ("krum", "multi_krum"):
        f = int(kwargs.get("f", 1))
        if min_clients and min_clients < 2 * f + 3:
            return (
                f"aggregator_kwargs.f of {f} needs at least 2f + 3 = {2 * f + 3} updates per round (Krum); "
                f"min_clients is {min_clients}: raise min_clients or lower f"
            )
        m = kwargs.get("m")
        if m is not None and min_clients and m > min_clients - f:
            return (
                f"aggregator_kwargs.m must be <= min_clients - f = {min_clients - f} "
                f"(multi-Krum averages m of the K - f best-scored updates), got {m:g}"
            )
    return None


def async_error(aggregator: str, kwargs: Mapping[str, float], server_lr: float) -> str | None:
    """Why an async session cannot run ``aggregator`` with ``kwargs`` and ``server_lr``, or None.

    Async folds each update into a buffer as it arrives and the controller steps on the buffer's
    mean: rules that need every update at once, and central DP's per-round accounting, do not fit.
    """
    if aggregator in ROBUST:
        return (
            f"aggregator {aggregator} cannot run in an async session: it needs every update of a round at "
            "once, and async folds each update as it arrives; use fedavg or a server optimizer "
            "(fedavgm, fedadam, fedyogi, fedadagrad), or mode sync"
        )
    if dp := sorted(name for name in kwargs if name in DP_KWARGS):
        return (
            f"aggregator_kwargs {', '.join(dp)}: central DP cannot be used in an async session (its "
            "accounting assumes rounds of sampled clients); remove the dp_* kwargs or use mode sync"
        )
    if server_lr != 1 and aggregator != "fedavg":
        return (
            f"server_lr {server_lr:g} applies to fedavg only; {aggregator} steps with its own "
            "aggregator_kwargs.server_lr: set that and leave server_lr at 1"
        )
    return None
