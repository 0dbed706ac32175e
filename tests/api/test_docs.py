"""/docs and /redoc work offline, and the OpenAPI document says what every route, filter and field means."""

import re
from pathlib import Path

import httpx
import pytest

from scaleout.api.app import create_app
from scaleout.api.openapi import ERRORS
from scaleout.api.settings import ApiSettings
from scaleout.roles import rest_rule
from scaleout.store.schema import scalar_fields
from tests.api.conftest import ApiServer, run_api

ENTITIES = [
    "Session",
    "SessionConfig",
    "Round",
    "ClientRoundResult",
    "CombinerRoundResult",
    "RejectedUpdate",
    "Model",
    "Validation",
    "Client",
    "Combiner",
    "Package",
    "Event",
    "SessionStats",
    "StalenessStats",
    "VersionStats",
]
SOURCES = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|(?:url|_url)\s*:\s*["']([^"']+)["']""")


@pytest.fixture(scope="module")
def document() -> dict:
    return create_app(ApiSettings()).openapi()


def page_sources(html: str) -> list[str]:
    return [a or b for a, b in SOURCES.findall(html)]


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"}),
        ("/redoc", {"/docs/assets/redoc.standalone.js"}),
    ],
)
def test_the_docs_pages_load_only_local_assets_and_those_are_served(
    server: ApiServer, page: str, assets: set[str]
) -> None:
    base = f"http://127.0.0.1:{server.port}"
    html = httpx.get(f"{base}{page}").text
    sources = page_sources(html)

    assert assets <= set(sources), sources
    assert [s for s in sources if "://" in s or s.startswith("//")] == []
    assert "fonts.googleapis" not in html
    for source in sources:
        response = httpx.get(f"{base}{source}")
        assert response.status_code == 200, source
        if source.endswith(".js"):
            assert "javascript" in response.headers["content-type"]
            assert len(response.content) > 100_000  # the real bundle, not a stub


def test_redoc_may_draw_only_images_of_this_server(server: ApiServer) -> None:
    """Redoc's bundle shows a logo from cdn.redoc.ly in its sidebar: an offline page must not fetch it."""
    response = httpx.get(f"http://127.0.0.1:{server.port}/redoc")

    assert response.status_code == 200
    assert response.headers["content-security-policy"] == "img-src 'self' data:"


def test_the_docs_assets_follow_the_docs_rule_when_the_api_has_a_token(tmp_path: Path) -> None:
    with run_api(tmp_path / "closed", token="admin-token") as closed:
        assert httpx.get(f"http://127.0.0.1:{closed.port}/docs/assets/swagger-ui.css").status_code == 401
    with run_api(tmp_path / "public", token="admin-token", public_docs=True) as public:
        assert httpx.get(f"http://127.0.0.1:{public.port}/docs/assets/swagger-ui.css").status_code == 200


def test_the_document_declares_the_bearer_scheme_on_every_secured_route(document: dict) -> None:
    scheme = document["components"]["securitySchemes"]["HTTPBearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if rest_rule(method.upper(), path).public:  # e.g. /health, /clients/enroll
                assert "security" not in operation, (method, path)
            else:
                assert operation["security"] == [{"HTTPBearer": []}], (method, path)
                assert {"401", "403"} <= operation["responses"].keys(), (method, path)


def test_every_operation_has_a_description_and_its_errors(document: dict) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("description"), (method, path)
            responses = operation["responses"]
            if "{" in path:
                assert responses["404"]["description"] == ERRORS["404"], (method, path)
            if method != "get":
                assert "409" in responses, (method, path)
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in responses, (method, path)
    uploads = [("/api/v1/packages/", "post"), ("/api/v1/models/", "post")]
    for path, method in uploads:
        assert document["paths"][path][method]["responses"]["413"]["description"] == ERRORS["413"]


def test_every_field_of_the_entities_is_described(document: dict) -> None:
    schemas = document["components"]["schemas"]
    for name in ENTITIES:
        undescribed = [k for k, v in schemas[name]["properties"].items() if not v.get("description")]
        assert undescribed == [], name


def test_every_filter_of_every_list_route_is_a_typed_parameter(document: dict) -> None:
    from scaleout.api.app import ENTITY_FAMILIES

    for family, entity, _ in ENTITY_FAMILIES:
        for suffix in ("/", "/count"):
            operation = document["paths"][f"/api/v1/{family}{suffix}"]["get"]
            parameters = {p["name"]: p for p in operation["parameters"]}
            assert set(scalar_fields(entity)) <= parameters.keys(), (family, suffix)
            for name in scalar_fields(entity):
                assert parameters[name]["in"] == "query" and parameters[name]["description"]
                assert parameters[name]["schema"], (family, name)
    rounds = {p["name"]: p["schema"] for p in document["paths"]["/api/v1/rounds/"]["get"]["parameters"]}
    assert rounds["index"]["anyOf"][0]["type"] == "integer"
    assert rounds["session_id"]["anyOf"][0]["type"] == "string"
