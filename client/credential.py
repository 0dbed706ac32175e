"""The client's credential: given (--token), kept in the work dir from an earlier enrollment, or obtained
now by exchanging an enrollment secret (``POST /api/v1/clients/enroll``); and the client id it is bound to.

A client credential acts as one client id only, so a client started with one learns that id from the
API (``GET /api/v1/clients/me``) instead of using a generated one.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from scaleout.client.backoff import Backoff
from scaleout.client.rest import error_detail, open_api
from scaleout.errors import ScaleoutError

logger = logging.getLogger(__name__)

CREDENTIAL_FILE = "credential"
# "Not yet" answers from an API that is starting or behind a restarting proxy.
RETRY_STATUSES = frozenset({502, 503, 504})


class CredentialError(ScaleoutError):
    """The API refused the client's credential or enrollment secret; the message says what to do."""


async def obtain_token(
    api_url: str,
    work_dir: Path,
    token: str | None,
    enroll_secret: str | None,
    name: str,
    backoff: Backoff,
    ca: Path | None = None,
) -> str | None:
    """The token to use: --token, else the one kept in the work dir, else one enrolled for now."""
    if token:
        return token
    path = work_dir / CREDENTIAL_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    if not enroll_secret:
        return None
    async with open_api(api_url, None, ca) as api:
        body = {"secret": enroll_secret, "name": name}
        response = await _with_retries(lambda: api.post("/clients/enroll", json=body), backoff)
    if response.status_code != 201:
        raise CredentialError(
            f"enrollment refused ({response.status_code}: {error_detail(response)}); "
            "start the client with a valid --enroll-secret or a --token"
        )
    issued = response.json()
    write_private(path, issued["token"])
    logger.info(
        "enrolled as client %s (%s); credential kept in %s", issued["client_id"], issued["name"], path
    )
    return issued["token"]


async def bound_client_id(api: httpx.AsyncClient, backoff: Backoff, token_file: Path) -> str | None:
    """The client id the credential is bound to; None for the federation's (admin) token or an API
    too old to say."""
    response = await _with_retries(lambda: api.get("/clients/me"), backoff)
    if response.status_code in (401, 403):
        kept = (
            f"; it came from {token_file}: delete that file to enroll again" if token_file.is_file() else ""
        )
        raise CredentialError(
            f"the API refused this client's credential ({response.status_code}: {error_detail(response)})"
            f"{kept}"
        )
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise CredentialError(
            f"the API's /clients/me answered {response.status_code}: {error_detail(response)}"
        )
    identity = response.json()
    return identity.get("client_id") if identity.get("role") == "client" else None


async def _with_retries(request: Callable[[], Awaitable[httpx.Response]], backoff: Backoff) -> httpx.Response:
    """The answer, waiting out an unreachable or restarting API as assignment does."""
    while True:
        try:
            response = await request()
        except httpx.TransportError as exc:
            reason = f"the API is unreachable ({exc!r})"
        else:
            if response.status_code not in RETRY_STATUSES:
                backoff.reset()
                return response
            reason = f"the API answered {response.status_code}"
        delay = backoff.next_delay()
        logger.info("%s; asking again in %.1f s", reason, delay)
        await asyncio.sleep(delay)


def write_private(path: Path, token: str) -> None:
    """Write the token readable by this user only, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    os.replace(partial, path)


def read_secret_file(path: Path) -> str:
    """The secret kept in a file (a Docker secret, or what `scaleout init --enroll-secret-file` wrote)."""
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise CredentialError(f"cannot read the enrollment secret file {path}: {error.strerror}") from None
    if not secret:
        raise CredentialError(f"the enrollment secret file {path} is empty")
    return secret
