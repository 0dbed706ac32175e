"""The client's side of the REST API: one httpx client with the API token, and readable errors.

The client talks to the API only over REST (never by importing it), so it can run on any machine
that reaches the API's URL.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from scaleout.tls import AsyncHTTPSTransport

API_PREFIX = "/api/v1"
# Connecting and each read are bounded; a package download may take long overall, but never
# stalls longer than this between two chunks.
REQUEST_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def open_api(api_url: str, token: str | None, ca: Path | None = None) -> httpx.AsyncClient:
    """An async HTTP client for ``{api_url}/api/v1`` sending ``Authorization: Bearer <token>`` if given.

    An https API is verified against ``ca`` (the system's roots without one); a certificate that does
    not verify raises TLSError, which no retry fixes.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        base_url=api_url.rstrip("/") + API_PREFIX,
        headers=headers,
        timeout=REQUEST_TIMEOUT,
        transport=AsyncHTTPSTransport(ca),
    )


def error_detail(response: httpx.Response) -> str:
    """The server's message: ``detail`` or ``message`` of a JSON body, else the start of the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("detail", "message"):
            if key in body:
                return str(body[key])
    return str(body)[:500]


def auth_hint(response: httpx.Response) -> str:
    """What to do about a 401/403 from the API."""
    return (
        f"the API refused the client ({response.status_code}: {error_detail(response)}); "
        "pass the API's token with --token or SCALEOUT_API_TOKEN"
    )
