"""The OpenAPI document and the pages that show it, complete and offline.

/docs (Swagger UI) and /redoc load their scripts from this server (the assets of the `fastapi-offline`
package), never from a CDN, so they work on a machine without internet. The document declares the bearer
scheme (Swagger UI's Authorize button), the error answers every route can give, and a description for
every field of the records the API returns: those words live here, beside the rest of the API's
documentation, so the entities stay the statestore's schema.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse
from fastapi_offline import FastAPIOffline

from scaleout.roles import rest_rule

DOCS_ASSETS = "/docs/assets"
BEARER = "HTTPBearer"
ERROR_SCHEMA = "ErrorMessage"
UPLOAD_TYPES = ("multipart/form-data", "application/octet-stream")

ERRORS = {
    "401": "No token, or one the API does not know (only when the API was started with --token): "
    "send the admin token or a client credential as 'Authorization: Bearer <token>'.",
    "403": "The token's role may not use this route (e.g. a client credential on an admin route).",
    "404": "No record has this id; the message names the family and the id.",
    "409": "The request conflicts with the current state: another session is Started, the session "
    "already ended, or the id is taken. The message says which and what to do.",
    "413": "The upload is larger than the API accepts (--max-upload-bytes, --max-model-bytes or "
    "--max-unpacked-bytes).",
}

_WHEN = "in UTC, ISO 8601"
FIELD_DOCS: dict[str, dict[str, str]] = {
    "Session": {
        "id": "the session's id (32 hex digits, time-ordered)",
        "name": "a name for people",
        "status": "Created, Started, Finished, Failed or Terminated (stopped)",
        "config": "how the session runs its rounds",
        "seed_model_id": "the model the first round trains from",
        "rounds_done": "rounds whose model was committed (async: versions committed); the running round is "
        "number rounds_done + 1",
        "error": "why the session failed, if it did",
        "created_at": f"when the session was created, {_WHEN}",
        "started_at": f"when it started, {_WHEN}",
        "finished_at": f"when it ended, {_WHEN}",
        "lease_owner": "the controller running the session while it is Started",
        "lease_expires": f"when that controller's lease lapses unless renewed, {_WHEN}",
    },
    "SessionConfig": {
        "rounds": "rounds to run (sync; an async session ends by max_versions or max_duration)",
        "min_clients": "updates a round needs to succeed",
        "aggregator_kwargs": "numeric settings of the aggregator, by name",
        "validate": "ask the clients to validate each new model",
    },
    "Round": {
        "id": "the round's id",
        "session_id": "the session it belongs to",
        "index": "0-based position within the session: people see round index + 1 (async: the version "
        "number)",
        "status": "Pending, Running, Finished or Failed",
        "config": "the session's config as this round ran it",
        "parent_model_id": "the global model the clients trained from",
        "model_id": "the model the round committed, once Finished",
        "combiners": "each combiner's part of the round",
        "clients": "the updates that were averaged into the model (async: folded into the version)",
        "rejected": "the updates that were refused, with why",
        "error": "why the round failed, if it did",
        "created_at": f"when the round was created, {_WHEN}",
        "started_at": f"when training was requested, {_WHEN}",
        "finished_at": f"when the round ended, {_WHEN}",
    },
    "ClientRoundResult": {
        "client_id": "the client that sent the update",
        "combiner_id": "the combiner that received it",
        "num_examples": "examples the client trained on: the update's weight in the average",
        "train_seconds": "seconds the client's train entry point took",
        "fold_seconds": "seconds the combiner took to fold the update into the average",
        "meta": "what the client reported with its update (training_metadata)",
    },
    "CombinerRoundResult": {
        "combiner_id": "the combiner",
        "model_id": "its partial model (the weighted average of its clients' updates)",
        "num_examples": "the examples behind that partial model",
        "seconds": "seconds the combiner's part of the round took",
        "error": "why the combiner's part failed, if it did",
    },
    "RejectedUpdate": {
        "client_id": "the client whose update was refused",
        "reason": "why it was refused",
        "combiner_id": "the combiner that refused it",
    },
    "Model": {
        "id": "the model's id; its bytes are in the model repository under it",
        "parent_id": "the model it was trained from; none for a seed",
        "session_id": "the session whose round made it; none for a seed",
        "round_id": "the round that made it; none for a seed",
        "name": "a name for people, e.g. 'my session round 3'",
        "size": "bytes of the model file",
        "sha256": "sha256 hex of the model file",
        "committed_at": f"when it joined the trail, {_WHEN}",
    },
    "Validation": {
        "id": "the validation's id",
        "model_id": "the model that was validated",
        "client_id": "the client that validated it, on its own data",
        "session_id": "the session of the model",
        "round_id": "the round that made the model",
        "metrics": "what the client's validate entry point reported, e.g. test_accuracy",
        "created_at": f"when it was stored, {_WHEN}",
    },
    "Client": {
        "id": "the client's id",
        "name": "the name the client gave itself (--name)",
        "combiner_id": "the combiner it is connected to",
        "status": "online or offline",
        "last_seen": f"its last heartbeat or task stream activity, {_WHEN}",
        "package_checksum": "sha256 of the compute package it runs",
        "created_at": f"when it first connected, {_WHEN}",
    },
    "Combiner": {
        "id": "the combiner's id, its --name",
        "name": "its name",
        "address": "the host clients dial",
        "port": "its gRPC port",
        "status": "online or offline",
        "last_seen": f"its last refresh of this record, {_WHEN}",
        "client_count": "clients connected to it",
    },
    "Package": {
        "id": "the package's id; its tarball is in the model repository under it",
        "name": "a name for people",
        "file_name": "the tarball's file name",
        "sha256": "sha256 hex of the tarball",
        "size": "bytes of the tarball",
        "helper": "how its models are read and averaged, e.g. numpyhelper",
        "description": "what the package is, as uploaded",
        "active": "the package clients download and run",
        "committed_at": f"when it was uploaded, {_WHEN}",
    },
    "Event": {
        "id": "the event's id (time-ordered)",
        "level": "debug, info, warning or error",
        "type": "what happened, e.g. round_started, round_failed, session_resumed",
        "message": "what happened, for people",
        "session_id": "the session it concerns",
        "round_id": "the round it concerns",
        "client_id": "the client it concerns",
        "combiner_id": "the combiner it concerns",
        "timestamp": f"when it happened, {_WHEN}",
    },
}


def create_documented_app(**kwargs: Any) -> FastAPI:
    """A FastAPI app whose /docs and /redoc use local assets and whose document is completed as above."""
    app = FastAPIOffline(
        static_url=DOCS_ASSETS,
        swagger_ui_parameters={"persistAuthorization": True},
        redoc_url=None,
        **kwargs,
    )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        """Redoc from local assets. Its sidebar shows a logo from cdn.redoc.ly: images are limited to
        this server so an offline page never reaches out (the logo is simply not drawn)."""
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = "img-src 'self' data:"
        return page

    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """The document with the bearer scheme, every error answer and every entity field described."""
    components = document.setdefault("components", {})
    schemes = components.setdefault("securitySchemes", {})
    schemes[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The admin token (--token / SCALEOUT_API_TOKEN) or a client credential; "
        "needed only when the API was started with a token.",
    }
    schemas = components.setdefault("schemas", {})
    schemas[ERROR_SCHEMA] = {
        "title": ERROR_SCHEMA,
        "type": "object",
        "properties": {"detail": {"type": "string", "description": "what was wrong and what to do"}},
        "required": ["detail"],
    }
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            _document_errors(path, method, operation)
    for name, fields in FIELD_DOCS.items():
        properties = schemas.get(name, {}).get("properties", {})
        for field, description in fields.items():
            if field in properties:
                properties[field].setdefault("description", description)
    return document


def _document_errors(path: str, method: str, operation: dict[str, Any]) -> None:
    """Add the error answers this operation can give, each with the {"detail": ...} body."""
    rule = rest_rule(method.upper(), path)
    codes = []
    if rule is not None and rule.public:
        operation.pop("security", None)  # the routers declare the scheme; public routes ignore it
    else:
        operation.setdefault("security", [{BEARER: []}])
        codes += ["401", "403"]
    if "{" in path:
        codes.append("404")
    if method != "get":
        codes.append("409")
    content = operation.get("requestBody", {}).get("content", {})
    if any(kind in content for kind in UPLOAD_TYPES):
        codes.append("413")
    responses = operation.setdefault("responses", {})
    reference = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}
    for code in codes:
        responses.setdefault(code, {"description": ERRORS[code], "content": reference})
