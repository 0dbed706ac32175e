"""The API's Prometheus metrics: its HTTP traffic, and the federation's records when scraped.

A pure ASGI middleware counts requests by method, route template (scaleout/roles.py's: never the ids
in a path, which would make one series per id) and status, with their duration and the body bytes in
and out, chunk by chunk for streamed bodies. Clients, combiners, sessions and rounds by status are
counted in the statestore at each scrape: the truth every API replica shares, not what one replica
saw. Statestore latency is timed where the app opens its statestore (scaleout/metrics.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scaleout.api.auth import matched_rule, route_path
from scaleout.store.entities import NodeStatus, RoundStatus, SessionStatus
from scaleout.store.statestore import Repository

REQUESTS = Counter(
    "scaleout_api_requests", "HTTP requests, by method, route and status.", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "scaleout_api_request_seconds",
    "Duration of HTTP requests until their last byte was sent, by method and route.",
    ["method", "route"],
)
RECEIVED_BYTES = Counter("scaleout_api_received_bytes", "HTTP request body bytes received.")
SENT_BYTES = Counter("scaleout_api_sent_bytes", "HTTP response body bytes sent.")
OTHER_ROUTE = "other"  # a path the access table does not list (404s)


class MetricsMiddleware:
    """Counts every HTTP request; outermost, so refused and failed requests count too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app fails before it starts a response

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                RECEIVED_BYTES.inc(len(message.get("body", b"")))
            return message

        async def counted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                SENT_BYTES.inc(len(message.get("body", b"")))
            await send(message)

        try:
            await self.app(scope, counted_receive, counted_send)
        finally:
            # The access table's template: one series per route, never one per id in a path.
            template, rule = matched_rule(scope["method"], route_path(scope))
            route = template if rule is not None else OTHER_ROUTE
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            REQUEST_SECONDS.labels(scope["method"], route).observe(time.perf_counter() - started)


class StatestoreCollector(Collector):
    """Records by status, counted in the app's statestore at each scrape (none before it is open)."""

    FAMILIES: tuple[tuple[str, str, str, type[StrEnum]], ...] = (
        ("scaleout_clients", "Clients by status in the statestore.", "clients", NodeStatus),
        ("scaleout_combiners", "Combiners by status in the statestore.", "combiners", NodeStatus),
        ("scaleout_sessions", "Sessions by status in the statestore.", "sessions", SessionStatus),
        ("scaleout_rounds", "Rounds by status in the statestore.", "rounds", RoundStatus),
    )

    def __init__(self, app_state: Any) -> None:
        self._state = app_state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        store = self._state.statestore
        if store is None:
            return
        for name, documentation, entity, statuses in self.FAMILIES:
            records: Repository[Any] = getattr(store, entity)
            family = GaugeMetricFamily(name, documentation, labels=["status"])
            for status in statuses:
                family.add_metric([status.value], records.count({"status": status.value}))
            yield family


def app_registry(app_state: Any) -> CollectorRegistry:
    """The registry of one app's own collectors (several apps may share a process: tests, `local`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatestoreCollector(app_state))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The process's metrics and the app's, in Prometheus' text format; blocking (statestore counts)."""
    return generate_latest(REGISTRY) + generate_latest(registry)
