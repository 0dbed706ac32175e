"""422 answers that name the field without echoing a large input back.

FastAPI's own answer repeats each wrong value in full: a 1 MB name would come back as 1 MB. Here a
value whose JSON is longer than MAX_ECHO characters is cut and says how long it was.
"""

import json
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

MAX_ECHO = 200


async def request_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    details = [_trimmed(detail) for detail in jsonable_encoder(error.errors())]
    return JSONResponse({"detail": details}, status_code=422)


def _trimmed(detail: dict[str, Any]) -> dict[str, Any]:
    trimmed = {key: _cut(value) for key, value in detail.items() if key in ("input", "ctx")}
    return {**detail, **trimmed}


def _cut(value: Any) -> Any:
    """The value if its JSON is short, else its text cut; inf and NaN, which JSON lacks, as text."""
    try:
        text, is_json = json.dumps(value, default=str, allow_nan=False), True
    except ValueError:
        text, is_json = json.dumps(value, default=str), False
    if len(text) > MAX_ECHO:
        return f"{text[:MAX_ECHO]}... ({len(text)} characters, cut)"
    return value if is_json else text
