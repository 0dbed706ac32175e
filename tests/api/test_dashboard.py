"""The web dashboard: served at /dashboard/ without a token, offline-only assets, and calling only
API routes (and query parameters) that the app really has."""

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scaleout.api.app import create_app
from scaleout.api.routes_dashboard import STATIC_DIR
from scaleout.api.settings import ApiSettings
from tests.api.conftest import ApiServer, run_api

TOKEN = "dashboard-token"
JS = STATIC_DIR / "dashboard.js"
ASSETS = [STATIC_DIR / "index.html", JS, STATIC_DIR / "dashboard.css"]
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an XML namespace name, never fetched

# A string literal (quotes or backticks) holding an API path, and the object literal passed with it
# as its query: api(`/api/v1/sessions/${id}`), api("/api/v1/rounds/", { session_id: id, limit: 10 }).
API_CALL = re.compile(r"""(["'`])(/api/v1/[^"'`]*)\1(?:\s*,\s*\{([^{}]*)\})?""")
TEMPLATE_PART = re.compile(r"\$\{[^}]*\}")
OPENAPI_PARAMETER = re.compile(r"\{[^}]*\}")
QUERY_KEY = re.compile(r"^\s*(\w+)\s*(?::|$)")


def base_url(server: ApiServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def dashboard_source() -> str:
    """The script without its comments, where paths are named for people rather than called."""
    source = re.sub(r"/\*.*?\*/", "", JS.read_text(), flags=re.DOTALL)
    return re.sub(r"^\s*//.*$", "", source, flags=re.MULTILINE)


def dashboard_calls() -> list[tuple[str, list[str]]]:
    """Each API path template in the script (``${...}`` as ``{}``) with the query keys it is given."""
    calls = []
    for match in API_CALL.finditer(dashboard_source()):
        path = TEMPLATE_PART.sub("{}", match.group(2))
        keys = [m.group(1) for part in (match.group(3) or "").split(",") if (m := QUERY_KEY.match(part))]
        calls.append((path, keys))
    return calls


def openapi_get_routes() -> dict[str, set[str]]:
    """GET paths of the app (``{id}`` as ``{}``) with the query parameters each accepts."""
    schema = create_app(ApiSettings()).openapi()
    routes = {}
    for path, operations in schema["paths"].items():
        if "get" in operations:
            parameters = operations["get"].get("parameters", [])
            query = {p["name"] for p in parameters if p["in"] == "query"}
            routes[OPENAPI_PARAMETER.sub("{}", path)] = query
    return routes


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[ApiServer]:
    with run_api(tmp_path, token=TOKEN) as api_server:
        yield api_server


def test_root_redirects_to_the_dashboard(server: ApiServer):
    response = httpx.get(f"{base_url(server)}/")

    assert response.status_code == 307
    # Relative, so it also works behind a proxy that serves the API under a prefix.
    assert response.headers["location"] == "dashboard/"
    followed = httpx.get(f"{base_url(server)}/", follow_redirects=True)
    assert followed.status_code == 200
    assert str(followed.url) == f"{base_url(server)}/dashboard/"
    assert "<title>scaleout-edge dashboard</title>" in followed.text


def test_dashboard_without_its_trailing_slash_redirects_to_it(server: ApiServer):
    response = httpx.get(f"{base_url(server)}/dashboard", follow_redirects=True)

    assert response.status_code == 200
    assert str(response.url) == f"{base_url(server)}/dashboard/"


@pytest.mark.parametrize(
    ("path", "content_types"),
    [
        ("/dashboard/", {"text/html"}),
        ("/dashboard/index.html", {"text/html"}),
        ("/dashboard/dashboard.js", {"text/javascript", "application/javascript"}),
        ("/dashboard/dashboard.css", {"text/css"}),
    ],
)
def test_the_page_and_its_assets_are_served_with_their_content_types(
    server: ApiServer, path: str, content_types: set[str]
):
    response = httpx.get(f"{base_url(server)}{path}")

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] in content_types
    assert response.headers["x-content-type-options"] == "nosniff"
    # Nothing may load from elsewhere: the dashboard works offline, and injected markup cannot run.
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-cache"


def test_a_missing_asset_is_404(server: ApiServer):
    assert httpx.get(f"{base_url(server)}/dashboard/nope.js").status_code == 404


def test_the_page_loads_without_a_token_while_the_api_requires_one(secured: ApiServer):
    with httpx.Client(base_url=base_url(secured)) as http:
        for path in ("/", "/dashboard/", "/dashboard/dashboard.js", "/dashboard/dashboard.css"):
            assert http.get(path, follow_redirects=True).status_code == 200, path
        assert http.get("/api/v1/sessions/").status_code == 401
        assert http.get("/api/v1/health").status_code == 200
        authorized = http.get("/api/v1/sessions/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert authorized.status_code == 200


def test_the_page_loads_its_own_script_and_stylesheet():
    page = (STATIC_DIR / "index.html").read_text()

    assert '<script src="dashboard.js"' in page
    assert '<link rel="stylesheet" href="dashboard.css">' in page


@pytest.mark.parametrize("asset", ASSETS, ids=lambda path: path.name)
def test_assets_load_nothing_from_another_host(asset: Path):
    urls = set(re.findall(r"""(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s"'`)]*""", asset.read_text()))

    assert urls <= {SVG_NAMESPACE}, f"{asset.name} refers to another host: {sorted(urls - {SVG_NAMESPACE})}"


def test_every_api_path_the_dashboard_calls_is_a_get_route_of_the_app():
    calls = dashboard_calls()
    routes = openapi_get_routes()

    paths = {path for path, _ in calls}
    # Not vacuous: the parse finds the routes every view depends on.
    assert {
        "/api/v1/health",
        "/api/v1/sessions/{}",
        "/api/v1/sessions/{}/progress",
        "/api/v1/rounds/",
        "/api/v1/validations/",
        "/api/v1/models/{}/download",
        "/api/v1/packages/active",
        "/api/v1/events/",
    } <= paths
    missing = sorted(paths - routes.keys())
    assert not missing, f"dashboard.js calls routes the API does not have: {missing}"


def test_every_query_parameter_the_dashboard_sends_is_accepted_by_its_route():
    routes = openapi_get_routes()

    sent = [(path, key) for path, keys in dashboard_calls() for key in keys]
    assert ("/api/v1/rounds/", "session_id") in sent
    unknown = sorted((path, key) for path, key in sent if key not in routes.get(path, set()))
    assert not unknown, f"dashboard.js sends query parameters its routes reject (422): {unknown}"


def test_the_dashboard_is_not_part_of_the_api_schema():
    paths = create_app(ApiSettings()).openapi()["paths"]

    # /api/auth/refresh: the official Scaleout Edge client's token exchange (api/routes_token_exchange.py)
    assert all(path.startswith(("/api/v1/", "/api/auth/")) for path in paths)
