"""422 answers that name the field without echoing a large input back, documented as they are.

FastAPI's own answer repeats each wrong value in full: a 1 MB name would come back as 1 MB. Here a
value whose JSON is longer than MAX_ECHO characters is cut and says how long it was. A 422 is either
that list of field errors or, for a wrong upload or filter value, one message (app.py ERROR_STATUS);
``document_error_detail`` makes the OpenAPI document say both.
"""

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

MAX_ECHO = 200
# The tags of the bodies a route takes in two dialects, ours and FEDn's (api/compat.py).
OURS, FEDN = "scaleout", "fedn"
BODY_TAGS = frozenset({OURS, FEDN})


async def request_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    details = [_trimmed(detail) for detail in jsonable_encoder(error.errors())]
    return JSONResponse({"detail": details}, status_code=422)


def _trimmed(detail: dict[str, Any]) -> dict[str, Any]:
    trimmed = {key: _cut(value) for key, value in detail.items() if key in ("input", "ctx")}
    return {**detail, **trimmed, "loc": untagged(detail.get("loc", []))}


def untagged(loc: list[Any]) -> list[Any]:
    """The field's place without the tag of a body that may be ours or FEDn's (api/compat.py)."""
    if len(loc) > 1 and loc[0] == "body" and loc[1] in BODY_TAGS:
        return [loc[0], *loc[2:]]
    return loc


def _cut(value: Any) -> Any:
    """The value if its JSON is short, else its text cut; inf and NaN, which JSON lacks, as text."""
    try:
        text, is_json = json.dumps(value, default=str, allow_nan=False), True
    except ValueError:
        text, is_json = json.dumps(value, default=str), False
    if len(text) > MAX_ECHO:
        return f"{text[:MAX_ECHO]}... ({len(text)} characters, cut)"
    return value if is_json else text


def document_error_detail(app: FastAPI) -> None:
    """Make /openapi.json's HTTPValidationError say that ``detail`` is a message or a list of errors."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            schemas = document.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                detail = schemas["HTTPValidationError"]["properties"]["detail"]
                schemas["HTTPValidationError"]["properties"]["detail"] = {
                    "title": "Detail",
                    "anyOf": [{"type": "string"}, {k: v for k, v in detail.items() if k != "title"}],
                }
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
