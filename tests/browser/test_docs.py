"""/docs and /redoc render offline: every request that would leave the machine is refused, and the pages
still show every operation of the API's OpenAPI document (their scripts are served by the API itself)."""

from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import expect

from tests.e2e.federation import Federation


def offline(page: Any, fed: Federation) -> list[str]:
    """Refuse every request not to the API under test; returns the list of refused URLs."""
    api_host = urlsplit(fed.api_url).netloc
    refused: list[str] = []

    def route(route: Any) -> None:
        if urlsplit(route.request.url).netloc == api_host:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    return refused


def operations(fed: Federation) -> list[tuple[str, str]]:
    document = httpx.get(f"{fed.api_url}/openapi.json").json()
    return [(method.upper(), path) for path, ops in document["paths"].items() for method in ops]


def test_swagger_ui_renders_every_operation_offline(fed: Federation, page: Any) -> None:
    refused = offline(page, fed)
    expected = operations(fed)

    page.goto(f"{fed.api_url}/docs")

    summaries = page.locator(".opblock-summary")
    expect(summaries).to_have_count(len(expected))
    expect(page.locator(".btn.authorize")).to_be_visible()  # the bearer scheme's Authorize button
    shown = page.locator(".opblock-summary").evaluate_all(
        """blocks => blocks.map(b => [b.querySelector(".opblock-summary-method").textContent,
                                      b.querySelector(".opblock-summary-path").dataset.path])"""
    )
    assert sorted(map(tuple, shown)) == sorted(expected)
    assert refused == []


def test_redoc_renders_every_operation_offline(fed: Federation, page: Any) -> None:
    refused = offline(page, fed)
    expected = operations(fed)

    page.goto(f"{fed.api_url}/redoc")

    # Redoc gives each operation a section whose id is "tag/<tag>/operation/<operationId>".
    expect(page.locator("[data-section-id*='/operation/']")).to_have_count(len(expected))
    assert refused == []
