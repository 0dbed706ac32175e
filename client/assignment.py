"""Ask the API which combiner to connect to (``POST /api/v1/clients/add``), retrying until it says.

The API answers 200 with a combiner, 203 while no compute package is active (and the client wants
the remote one), 503 while no combiner is online. The first two "not yet" answers, and an API that
cannot be reached, are the normal state of a federation that is still starting up, so the client
waits them out with backoff; anything else is a mistake the user has to fix, so it stops.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from scaleout.client.backoff import Backoff
from scaleout.client.rest import auth_hint, error_detail
from scaleout.errors import ScaleoutError

logger = logging.getLogger(__name__)

# Answers that mean "not yet": no package (203), no combiner (503), a proxy in front of a
# restarting API (502, 504).
RETRY_STATUSES = frozenset({203, 502, 503, 504})


class AssignmentError(ScaleoutError):
    """The API refused to assign a combiner, or did not within the assign timeout."""


@dataclass(frozen=True)
class Assignment:
    """The combiner the API chose for this client, and how the client gets its package."""

    client_id: str
    host: str
    port: int
    combiner: str
    package: str
    helper_type: str
    tls: bool = False  # the combiner serves TLS (an API that does not say so predates TLS: plaintext)

    @property
    def address(self) -> str:
        """``host:port`` for grpc, with an IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"


class _NotYet(Exception):
    """One attempt did not get an assignment but may succeed later; the message says why."""


async def request_assignment(
    api: httpx.AsyncClient,
    client_id: str,
    name: str,
    package: str,
    backoff: Backoff,
    timeout: float | None = None,
) -> Assignment:
    """Retry ``/clients/add`` with ``backoff`` until the API assigns a combiner.

    ``timeout`` None retries forever; otherwise AssignmentError after ``timeout`` seconds, naming
    the last reason. Errors that retrying cannot fix (bad token, wrong URL) raise at once.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    body = {"client_id": client_id, "name": name, "package": package}
    while True:
        try:
            assignment = await _attempt(api, body)
        except _NotYet as reason:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise AssignmentError(
                    f"no combiner assigned within {timeout:g} s (--assign-timeout): {reason}"
                ) from None
            delay = backoff.next_delay()
            delay = delay if remaining is None else min(delay, remaining)
            logger.info("waiting for an assignment: %s; asking again in %.1f s", reason, delay)
            await asyncio.sleep(delay)
            continue
        backoff.reset()
        logger.info("assigned to combiner %s at %s", assignment.combiner, assignment.address)
        return assignment


async def _attempt(api: httpx.AsyncClient, body: dict[str, str]) -> Assignment:
    try:
        response = await api.post("/clients/add", json=body)
    except httpx.TransportError as exc:
        raise _NotYet(f"the API at {api.base_url} is unreachable ({exc!r})") from exc
    if response.status_code in RETRY_STATUSES:
        raise _NotYet(f"the API answered {response.status_code}: {error_detail(response)}")
    if response.status_code in (401, 403):
        raise AssignmentError(auth_hint(response))
    if response.status_code == 404:
        raise AssignmentError(
            f"{response.request.url} does not exist (404: {error_detail(response)}); "
            "is --api-url the address of `scaleout api`?"
        )
    if response.status_code != 200:
        raise AssignmentError(
            f"the API refused the assignment ({response.status_code}: {error_detail(response)})"
        )
    return _parse(response, body["client_id"])


def _parse(response: httpx.Response, client_id: str) -> Assignment:
    try:
        data: dict[str, Any] = response.json()
        combiner = data["combiner"]
        return Assignment(
            client_id=str(data.get("client_id", client_id)),
            host=str(combiner["host"]),
            port=int(combiner["port"]),
            combiner=str(combiner.get("name", combiner["host"])),
            package=str(data.get("package", "remote")),
            helper_type=str(data.get("helper_type", "numpyhelper")),
            tls=_tls(combiner),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise AssignmentError(
            f"the API's answer to /clients/add lacks {exc} (got {response.text[:300]!r}); "
            "are the client and the API the same version?"
        ) from exc


def _tls(combiner: dict[str, Any]) -> bool:
    """Whether to dial TLS; anything but true or false is refused, never read as plaintext (the token
    would cross the network readable)."""
    tls = combiner.get("tls", False)
    if not isinstance(tls, bool):
        raise AssignmentError(
            f"the API's answer to /clients/add has tls={tls!r}, not true or false; "
            "are the client and the API the same version?"
        )
    return tls
