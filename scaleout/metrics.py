"""Prometheus metrics every server shares: statestore latency, and the combiner's metrics port.

Metric objects live in prometheus_client's default registry, once per process; the API serves them on
its own port at /metrics (api/routes_metrics.py), a combiner on a port of their own (--metrics-port).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Histogram

from scaleout.roles import ENTITY_FAMILIES
from scaleout.store.statestore import Repository, Statestore

# Bounds from a local SQLite write (~0.1 ms) to a MongoDB across a slow link (seconds).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATESTORE_SECONDS = Histogram(
    "scaleout_statestore_seconds",
    "Duration of statestore operations, by entity and operation (successful or not).",
    ["entity", "operation"],
    buckets=LATENCY_BUCKETS,
)
ENTITIES = (*ENTITY_FAMILIES, "credentials")  # every repository of the statestore


class _TimedRepository:
    """A repository whose every method call is timed into STATESTORE_SECONDS."""

    def __init__(self, inner: Repository[Any], entity: str) -> None:
        self._inner = inner
        self._entity = entity

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or not callable(value):
            return value
        return _timed(value, STATESTORE_SECONDS.labels(self._entity, name))


def _timed(method: Callable[..., Any], histogram: Any) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            histogram.observe(time.perf_counter() - started)

    return call


class TimedStatestore(Statestore):
    """The statestore with each repository call timed; what the servers open when they own it."""

    def __init__(self, inner: Statestore) -> None:
        self._inner = inner
        for entity in ENTITIES:
            setattr(self, entity, _TimedRepository(getattr(inner, entity), entity))

    def ping(self) -> None:
        with STATESTORE_SECONDS.labels("statestore", "ping").time():
            self._inner.ping()

    def close(self) -> None:
        self._inner.close()
