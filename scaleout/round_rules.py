"""The rules a session's round settings obey, defined once for the API and the combiner.

The API applies them to a SessionConfig when a session is created (store/entities.py) and the
combiner to every RoundConfig it is asked to run, so a session the API accepts never fails at its
first round on a setting the combiner refuses. A leaf module: it imports nothing of ours.
"""

import math

# The aggregators and helpers a combiner can run; extend these (and the combiner) together.
AGGREGATORS = ("fedavg",)
HELPERS = ("numpyhelper",)

MAX_ROUNDS = 100_000
MAX_ROUND_TIMEOUT = 7 * 24 * 3600.0  # a week: longer is a typo, and inf never ends a stuck round
MAX_CLIENTS = 1_000_000  # min_clients, requested_clients, buffer_size; RoundConfig carries uint32
MAX_ROUND_RETRIES = 1_000
MAX_UPDATE_NORM = 1e30  # finite, so a norm computed in float64 can be compared against it
MAX_CLIENT_SETTINGS_BYTES = 64 * 1024  # JSON sent with every train task
MAX_AGGREGATOR_KWARGS = 64
MAX_NAME_CHARS = 200


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
