"""The web dashboard: served at /dashboard/ without a token, offline-only assets, and calling only
API routes (and query parameters) that the app really has."""

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scaleout.api.app import create_app
from scaleout.api.routes_dashboard import STATIC_DIR
from scaleout.api.settings import ApiSettings
from scaleout.cli.main import cli
from tests.api.conftest import ApiServer, run_api

TOKEN = "dashboard-token"
MODULES = sorted((STATIC_DIR / "js").rglob("*.js"))
ASSETS = [STATIC_DIR / "index.html", STATIC_DIR / "dashboard.css", STATIC_DIR / "favicon.svg", *MODULES]
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an XML namespace name, never fetched

# A string literal (quotes or backticks) holding an API path, and the object literal passed with it
# as its query: api(`/api/v1/sessions/${id}`), api("/api/v1/rounds/", { session_id: id, limit: 10 }).
# apiPost("/api/v1/...", body) is a POST (its object is the body); every other call a GET.
API_CALL = re.compile(r"""(\w+)\(\s*(["'`])(/api/v1/[^"'`]*)\2(?:\s*,\s*\{([^{}]*)\})?""")
POSTS = {"apiPost"}
TEMPLATE_PART = re.compile(r"\$\{[^}]*\}")
OPENAPI_PARAMETER = re.compile(r"\{[^}]*\}")
QUERY_KEY = re.compile(r"^\s*(\w+)\s*(?::|$)")


def base_url(server: ApiServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def dashboard_source() -> str:
    """The modules without their comments, where paths are named for people rather than called."""
    text = "\n".join(module.read_text() for module in MODULES)
    source = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return re.sub(r"^\s*//.*$", "", source, flags=re.MULTILINE)


def dashboard_calls(method: str = "get") -> list[tuple[str, list[str]]]:
    """Each API path template the modules call with `method` (``${...}`` as ``{}``), with the query
    keys it is given."""
    calls = []
    for match in API_CALL.finditer(dashboard_source()):
        if ("post" if match.group(1) in POSTS else "get") != method:
            continue
        path = TEMPLATE_PART.sub("{}", match.group(3))
        keys = [m.group(1) for part in (match.group(4) or "").split(",") if (m := QUERY_KEY.match(part))]
        calls.append((path, keys if method == "get" else []))
    return calls


def openapi_routes(method: str = "get") -> dict[str, set[str]]:
    """Paths of the app with `method` (``{id}`` as ``{}``), with the query parameters each accepts."""
    schema = create_app(ApiSettings()).openapi()
    routes = {}
    for path, operations in schema["paths"].items():
        if method in operations:
            parameters = operations[method].get("parameters", [])
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
        ("/dashboard/js/main.js", {"text/javascript", "application/javascript"}),
        ("/dashboard/js/pages/session.js", {"text/javascript", "application/javascript"}),
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
        for path in ("/", "/dashboard/", "/dashboard/js/main.js", "/dashboard/dashboard.css", "/favicon.ico"):
            assert http.get(path, follow_redirects=True).status_code == 200, path
        assert http.get("/api/v1/sessions/").status_code == 401
        assert http.get("/api/v1/health").status_code == 200
        authorized = http.get("/api/v1/sessions/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert authorized.status_code == 200


def test_the_page_loads_its_own_script_and_stylesheet():
    page = (STATIC_DIR / "index.html").read_text()

    assert '<script type="module" src="js/main.js">' in page
    assert '<link rel="stylesheet" href="dashboard.css">' in page


@pytest.mark.parametrize("asset", ASSETS, ids=lambda path: path.name)
def test_assets_load_nothing_from_another_host(asset: Path):
    urls = set(re.findall(r"""(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s"'`)]*""", asset.read_text()))

    assert urls <= {SVG_NAMESPACE}, f"{asset.name} refers to another host: {sorted(urls - {SVG_NAMESPACE})}"


def test_every_api_path_the_dashboard_calls_is_a_get_route_of_the_app():
    calls = dashboard_calls()
    routes = openapi_routes()

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
    assert not missing, f"the dashboard calls routes the API does not have: {missing}"


def test_every_api_path_the_dashboard_posts_to_is_a_post_route_of_the_app():
    paths = {path for path, _ in dashboard_calls("post")}

    assert paths == {"/api/v1/sessions/start", "/api/v1/sessions/{}/stop"}
    assert paths <= openapi_routes("post").keys()


def test_every_query_parameter_the_dashboard_sends_is_accepted_by_its_route():
    routes = openapi_routes()

    sent = [(path, key) for path, keys in dashboard_calls() for key in keys]
    assert ("/api/v1/rounds/", "session_id") in sent
    unknown = sorted((path, key) for path, key in sent if key not in routes.get(path, set()))
    assert not unknown, f"the dashboard sends query parameters its routes reject (422): {unknown}"


def test_the_dashboard_is_not_part_of_the_api_schema():
    paths = create_app(ApiSettings()).openapi()["paths"]

    # /api/auth/refresh: the official Scaleout Edge client's token exchange (api/routes_token_exchange.py)
    assert all(path.startswith(("/api/v1/", "/api/auth/")) for path in paths)


def test_the_favicon_is_served_without_a_token(secured: ApiServer):
    response = httpx.get(f"{base_url(secured)}/favicon.ico")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.text == (STATIC_DIR / "favicon.svg").read_text()


def cli_commands() -> set[str]:
    """Every `scaleout GROUP COMMAND` (and top-level command) the CLI has."""
    commands = set()
    for name, command in cli.commands.items():
        commands.add(f"scaleout {name}")
        for sub in getattr(command, "commands", {}):
            commands.add(f"scaleout {name} {sub}")
    return commands


def test_every_command_the_dashboard_suggests_exists():
    # A hint is written `scaleout group command ARGS` in backticks (rendered as <code>): the part before
    # its arguments must be a command of the CLI.
    suggested = re.findall(r"`(scaleout(?: [a-z][a-z-]*)+)", dashboard_source())

    assert {"scaleout package upload", "scaleout model upload", "scaleout session start"} <= set(suggested)
    unknown = sorted(set(suggested) - cli_commands())
    assert not unknown, f"the dashboard suggests commands the CLI does not have: {unknown}"


def test_every_static_file_ships_as_package_data():
    # A module left out of package-data would 404 in an installed (non-editable) API: the page breaks. Each
    # static folder is a package of its own (setuptools warns about data folders that are not).
    setuptools = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["tool"][
        "setuptools"
    ]
    api_dir = STATIC_DIR.parent
    shipped = set()
    for package, patterns in setuptools["package-data"].items():
        if package.startswith("scaleout.api."):
            assert package in setuptools["packages"], f"{package} has package data but is not a package"
            folder = api_dir.joinpath(*package.split(".")[2:])
            shipped |= {path for pattern in patterns for path in folder.glob(pattern) if path.is_file()}

    assert {path for path in STATIC_DIR.rglob("*") if path.is_file()} == shipped
