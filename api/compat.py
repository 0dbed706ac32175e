"""FEDn's and Scaleout's API clients on this API: thin mappings onto the existing routes, not a second API.

``fedn==0.33.0``'s ``APIClient`` and ``scaleout==1.1.0``'s ``Scaleout`` client speak FEDn's REST
dialect. What differs from ours is mapped here, onto the routes that already do the work:

- paging and sorting as headers (``X-Limit``, ``X-Skip``, ``X-Sort-Key``, ``X-Sort-Order``, and
  ``X-Reverse`` on the model trail) become the query parameters of the same names
  (:class:`CompatMiddleware`);
- camelCase filters (``sessionId``, ``modelId``, ``combinerId``, ...) become snake_case ones, and
  ``sender.name`` / ``sender.client_id`` / ``combiner`` become ``client_id`` / ``combiner_id``;
- FEDn's session bodies (``seed_model_id`` + ``session_config``, then ``{session_id, rounds,
  round_timeout}`` to start it) become a :class:`SessionRequest` and a start of that session;
- ``/helpers/active`` answers the active package's helper; ``/file-upload/*`` holds a chunked upload
  until ``POST /packages/`` or ``POST /models/`` consumes its ``file_token``;
- ``/statuses`` are the events; ``/clients/config`` and ``/get_controller_status`` answer from the
  statestore.

Answers carry ``model_id``/``session_id`` beside ``id`` (computed fields of Model and Session).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import IO, Annotated, Any, BinaryIO, Literal
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Body, Header, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

# routes_models as a module: it imports this one.
from scaleout.api import deps, routes_models
from scaleout.api.checks import check_helper
from scaleout.api.validation import FEDN, OURS
from scaleout.errors import NotFound
from scaleout.roles import API
from scaleout.store.entities import SessionConfig, SessionStatus

# --- headers and filters ----------------------------------------------------------------------------

# FEDn's paging headers and the query parameters they stand for.
PAGING_HEADERS = {
    b"x-limit": "limit",
    b"x-skip": "skip",
    b"x-sort-key": "sort_key",
    b"x-sort-order": "sort_order",
}
# FEDn reads X-Limit and X-Skip only when they are non-negative integers and ignores them otherwise;
# its own APIClient.get_model_trail() sends X-Limit: "{'count': N}" (our /count answer stringified).
COUNTS = frozenset({"limit", "skip"})
# Filters that are not camelCase of ours: FEDn names a client by its sender; on /clients a combiner by
# `combiner`.
FILTER_ALIASES = {"sender.name": "client_id", "sender.client_id": "client_id"}
CLIENT_FILTER_ALIASES = {**FILTER_ALIASES, "combiner": "combiner_id"}
CAMEL = re.compile(r"^[a-z]+(?:[A-Z][a-z0-9]*)+$")


def snake_case(name: str, aliases: dict[str, str] = FILTER_ALIASES) -> str:
    """``sessionId`` -> ``session_id``; other names as ``aliases`` says, or unchanged."""
    if name in aliases:
        return aliases[name]
    if CAMEL.match(name):
        return re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), name)
    return name


def mapped_query(path: str, query: str, headers: list[tuple[bytes, bytes]]) -> str | None:
    """The query string of a FEDn-style request in our words (a parameter given in the query wins
    over its header), or None when it has nothing to map."""
    aliases = CLIENT_FILTER_ALIASES if path.startswith(f"{API}/clients") else FILTER_ALIASES
    pairs = parse_qsl(query, keep_blank_values=True)
    params = [(snake_case(key, aliases), value) for key, value in pairs]
    renamed = params != pairs
    given = {key for key, _ in params}
    wanted = dict(PAGING_HEADERS)
    if path.endswith("/ancestors"):  # X-Reverse orders the model trail only
        wanted[b"x-reverse"] = "reverse"
    for key, value in headers:
        name = wanted.get(key)
        text = value.decode("latin-1").strip()
        if name is None or name in given or (name in COUNTS and not text.isdigit()):
            continue
        params.append((name, text.lower() if name in ("sort_order", "reverse") else text))
        given.add(name)
    return urlencode(params) if renamed or len(params) > len(pairs) else None


class CompatMiddleware:
    """Rewrite the query string of /api/v1 requests: paging headers and FEDn's filter names become ours.

    Done before routing, so each route validates the mapped parameters exactly as if they had been
    sent as query parameters (a bad value gets the same 422).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(f"{API}/"):
            query = scope.get("query_string", b"").decode("latin-1")
            mapped = mapped_query(scope["path"], query, scope["headers"])
            if mapped is not None:
                scope = {**scope, "query_string": mapped.encode("latin-1")}
        await self.app(scope, receive, send)


# --- sessions ---------------------------------------------------------------------------------------


class FednSessionConfig(BaseModel):
    """``session_config`` as FEDn 0.33's and Scaleout 1.1's ``start_session`` send it."""

    model_config = ConfigDict(extra="forbid")

    aggregator: str = "fedavg"
    aggregator_kwargs: dict[str, float] | None = None
    rounds: int | None = Field(None, description="Scaleout's client sends it here, FEDn's at start")
    round_timeout: float = 180.0
    buffer_size: int = Field(-1, description="-1: no buffer (every selected client)")
    model_id: str | None = None
    delete_models_storage: bool = Field(True, description="ignored: combiners keep no models")
    clients_required: int = Field(1, description="our min_clients")
    requested_clients: int | None = None
    validate_models: bool = Field(True, alias="validate")
    helper_type: str | None = Field(None, description="our helper; the active package's if omitted")
    server_functions: str | None = Field(None, description="not supported: must be null")


NO_SERVER_FUNCTIONS = {
    "type": "value_error",
    "loc": ("body", "session_config", "server_functions"),
    "msg": "server functions are not supported here: leave server_functions out and choose an "
    "aggregator (and aggregator_kwargs) instead",
    "input": "(the source sent)",
}


class FednSessionRequest(BaseModel):
    """FEDn's ``POST /sessions/`` body."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    seed_model_id: str | None = None
    session_config: FednSessionConfig


class FednStartRequest(BaseModel):
    """FEDn's ``POST /sessions/start`` body: start a Created session with these rounds."""

    model_config = ConfigDict(extra="forbid")

    session_id: str
    rounds: int | None = None
    round_timeout: float | None = None


def _fedn_shaped(key: str) -> Any:
    return lambda body: FEDN if isinstance(body, dict) and key in body else OURS


def session_body(ours: type[BaseModel]) -> Any:
    """``POST /sessions/``'s body: ours, or FEDn's (told apart by its ``session_config``)."""
    union = Annotated[ours, Tag(OURS)] | Annotated[FednSessionRequest, Tag(FEDN)]
    return Annotated[union, Discriminator(_fedn_shaped("session_config")), Body()]


def start_body(ours: type[BaseModel]) -> Any:
    """``POST /sessions/start``'s body: ours (create and start), or FEDn's ``{session_id, ...}``."""
    union = Annotated[ours, Tag(OURS)] | Annotated[FednStartRequest, Tag(FEDN)]
    return Annotated[union, Discriminator(_fedn_shaped("session_id")), Body()]


def session_config(fedn: FednSessionConfig, helper: str) -> SessionConfig:
    """Our SessionConfig for FEDn's; its checks (bounds, known aggregator and helper) apply unchanged."""
    if fedn.server_functions is not None:
        raise RequestValidationError([NO_SERVER_FUNCTIONS])
    values: dict[str, Any] = {
        "round_timeout": fedn.round_timeout,
        "min_clients": fedn.clients_required,
        "requested_clients": fedn.requested_clients,
        "buffer_size": fedn.buffer_size if fedn.buffer_size > 0 else None,
        "aggregator": fedn.aggregator,
        "aggregator_kwargs": fedn.aggregator_kwargs or {},
        "validate_models": fedn.validate_models,
        "helper": fedn.helper_type or helper,
    }
    if fedn.rounds is not None:
        values["rounds"] = fedn.rounds
    return _checked_config(values, ("body", "session_config"))


def restarted_config(config: SessionConfig, body: FednStartRequest) -> SessionConfig:
    """The session's config with the rounds and round_timeout FEDn's start call gives."""
    changes = {"rounds": body.rounds, "round_timeout": body.round_timeout}
    changes = {key: value for key, value in changes.items() if value is not None}
    return _checked_config({**config.model_dump(), **changes}, ("body",))


def _checked_config(values: dict[str, Any], loc: tuple[str, ...]) -> SessionConfig:
    """A SessionConfig, or the 422 a body with these values would get, located in the FEDn body."""
    try:
        return SessionConfig.model_validate(values, strict=False)
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": (*loc, *e["loc"])} for e in error.errors(include_url=False)]
        ) from None


# --- chunked uploads --------------------------------------------------------------------------------

MAX_PENDING_UPLOADS = 8
MAX_CHUNK_BYTES = 16 * 1024 * 1024  # Scaleout's client sends 900 KiB and halves its chunks on a 413
UPLOAD_TTL = 3600.0  # seconds a begun or completed upload is kept before a new one may drop it


@dataclass
class PendingUpload:
    file_name: str
    file_size: int
    file: IO[bytes] = field(default_factory=tempfile.TemporaryFile)  # anonymous: gone when closed
    next_index: int = 0
    received: int = 0
    begun: float = field(default_factory=time.monotonic)


class ChunkedUploads:
    """Uploads sent in chunks (Scaleout's client), held in anonymous temporary files until a
    ``file_token`` is used once by ``POST /packages/`` or ``POST /models/``. Bounded in number and age."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, PendingUpload] = {}  # by upload_id
        self._completed: dict[str, PendingUpload] = {}  # by file_token

    def begin(self, file_name: str, file_size: int, max_bytes: int) -> str:
        if file_size > max_bytes:
            raise HTTPException(
                413,
                f"file_size {file_size} is above the upload limit of {max_bytes} bytes; start the API "
                "with a larger --max-upload-bytes (SCALEOUT_API_MAX_UPLOAD_BYTES) if it is meant to be",
            )
        with self._lock:
            self._expire()
            if len(self._pending) + len(self._completed) >= MAX_PENDING_UPLOADS:
                raise HTTPException(
                    429, f"{MAX_PENDING_UPLOADS} uploads are pending; complete or abort one, then retry"
                )
            upload_id = secrets.token_hex(16)
            self._pending[upload_id] = PendingUpload(file_name, file_size)
            return upload_id

    def add_chunk(self, upload_id: str, index: int, data: bytes) -> int:
        """Append chunk ``index``; under the lock, so two chunks of one upload cannot interleave."""
        with self._lock:
            upload = self._get(upload_id)
            if index != upload.next_index:
                raise HTTPException(
                    409, f"chunk {index} of upload {upload_id} is out of order: expected {upload.next_index}"
                )
            if upload.received + len(data) > upload.file_size:
                raise HTTPException(
                    413, f"upload {upload_id} is larger than its file_size of {upload.file_size} bytes"
                )
            upload.file.write(data)
            upload.next_index += 1
            upload.received += len(data)
            return upload.received

    def complete(self, upload_id: str) -> str:
        with self._lock:
            upload = self._get(upload_id)
            if upload.received != upload.file_size:
                raise HTTPException(
                    409,
                    f"upload {upload_id} has {upload.received} of its {upload.file_size} bytes; "
                    "send the rest",
                )
            token = secrets.token_urlsafe(24)
            self._completed[token] = self._pending.pop(upload_id)
            return token

    def abort(self, upload_id: str) -> None:
        with self._lock:
            upload = self._pending.pop(upload_id, None)
        if upload is not None:
            upload.file.close()

    @contextmanager
    def take(self, file_token: str) -> Iterator[tuple[BinaryIO, str]]:
        """The completed file of a token (rewound) and its name; discarded after the block."""
        with self._lock:
            upload = self._completed.pop(file_token, None)
        if upload is None:
            raise HTTPException(
                422, "unknown or used file_token; upload the file again with POST /api/v1/file-upload/init"
            )
        try:
            upload.file.seek(0)
            yield upload.file, upload.file_name  # type: ignore[misc]
        finally:
            upload.file.close()

    def _get(self, upload_id: str) -> PendingUpload:
        upload = self._pending.get(upload_id)
        if upload is None:
            raise HTTPException(
                404, f"no upload {upload_id[:64]!r} is pending; begin one with POST /api/v1/file-upload/init"
            )
        return upload

    def _expire(self) -> None:
        now = time.monotonic()
        for uploads in (self._pending, self._completed):
            for key in [k for k, u in uploads.items() if now - u.begun > UPLOAD_TTL]:
                uploads.pop(key).file.close()

    def close(self) -> None:
        with self._lock:
            for upload in [*self._pending.values(), *self._completed.values()]:
                upload.file.close()
            self._pending.clear()
            self._completed.clear()


def uploads(request: Request) -> ChunkedUploads:
    return request.app.state.chunked_uploads


@contextmanager
def uploaded_file(
    request: Request, file: UploadFile | None, file_token: str | None, default_name: str
) -> Iterator[tuple[BinaryIO, str]]:
    """The file of a multipart upload, or of a completed chunked upload named by ``file_token``."""
    if file is not None:
        yield file.file, file.filename or default_name
    elif file_token:
        with uploads(request).take(file_token) as taken:
            yield taken
    else:
        raise HTTPException(
            422,
            "no file: send it as the multipart part 'file', or upload it in chunks "
            "with POST /api/v1/file-upload/init and pass the form field 'file_token'",
        )


class UploadInit(BaseModel):
    file_name: str = Field(min_length=1, max_length=200)
    file_size: int = Field(ge=0)
    chunk_size: int = Field(0, ge=0, description="informative: chunks may be of any size")


class UploadId(BaseModel):
    upload_id: str


class UploadProgress(BaseModel):
    received: int


class FileToken(BaseModel):
    file_token: str


# --- routes -----------------------------------------------------------------------------------------

router = APIRouter(tags=["compatibility"])
root_router = APIRouter(tags=["compatibility"])


class Helper(BaseModel):
    helper: str


@router.get("/helpers/active", response_model=str, summary="The active package's helper (FEDn)")
def get_active_helper(store: deps.StatestoreDep, settings: deps.SettingsDep) -> str:
    """FEDn's view of the active helper: the helper named by the active compute package."""
    return routes_models.active_helper(store, settings)


@router.put(
    "/helpers/active", response_model=Helper, summary="Confirm the helper (FEDn); it is the package's"
)
def set_active_helper(body: Helper, store: deps.StatestoreDep, settings: deps.SettingsDep) -> Helper:
    """A package carries its helper, so this only checks that the one asked for is the one in use."""
    check_helper(body.helper)
    current = routes_models.active_helper(store, settings)
    if body.helper != current:
        raise HTTPException(
            409,
            f"the active helper is {current!r}, set by the compute package; upload the package with "
            f"helper={body.helper!r} to use that one",
        )
    return body


class ClientConfig(BaseModel):
    network_id: str
    discover_host: str
    discover_port: int
    checksum: str | None = None


@router.get("/clients/config", response_model=ClientConfig, summary="Where clients ask for a combiner (FEDn)")
def client_config(
    request: Request,
    store: deps.StatestoreDep,
    settings: deps.SettingsDep,
    checksum: Annotated[bool, Query(description="include the active package's sha256")] = True,
) -> ClientConfig:
    """FEDn's client configuration: where a client finds this API and the active package's checksum."""
    url = request.base_url
    config = ClientConfig(
        network_id=request.app.title,
        discover_host=url.hostname or settings.host,
        discover_port=url.port or settings.port,
    )
    if checksum:
        with suppress(NotFound):  # FEDn leaves it out too while no package is active
            config.checksum = store.packages.active().sha256
    return config


class ControllerStatus(BaseModel):
    state: Literal["idle", "instructing"]


# Outside /api/v1 where FEDn has it, so left out of the API's document (which is /api/v1 only).
@root_router.get("/get_controller_status", response_model=ControllerStatus, include_in_schema=False)
def controller_status(store: deps.StatestoreDep) -> ControllerStatus:
    started = store.sessions.count({"status": SessionStatus.STARTED.value})
    return ControllerStatus(state="instructing" if started else "idle")


@router.post("/file-upload/init", response_model=UploadId, summary="Begin a chunked upload (Scaleout)")
def begin_upload(body: UploadInit, request: Request, settings: deps.SettingsDep) -> UploadId:
    """Begin a chunked upload (Scaleout's client): chunks follow in order; complete gives a file_token."""
    return UploadId(
        upload_id=uploads(request).begin(body.file_name, body.file_size, settings.max_upload_bytes)
    )


@router.post("/file-upload/{upload_id}/chunk", response_model=UploadProgress, summary="Send the next chunk")
async def upload_chunk(
    upload_id: str,
    request: Request,
    x_chunk_index: Annotated[int, Header(alias="X-Chunk-Index", ge=0)],
) -> UploadProgress:
    """Append the next chunk (X-Chunk-Index, from 0) of a chunked upload; 413 when it is over 16 MiB."""
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > MAX_CHUNK_BYTES:
            raise HTTPException(413, f"a chunk may be at most {MAX_CHUNK_BYTES} bytes; send smaller chunks")
    received = await asyncio.to_thread(uploads(request).add_chunk, upload_id, x_chunk_index, bytes(data))
    return UploadProgress(received=received)


@router.post(
    "/file-upload/{upload_id}/complete", response_model=FileToken, summary="Finish; get a file_token"
)
def complete_upload(upload_id: str, request: Request) -> FileToken:
    """Finish a chunked upload: its file_token names the bytes once, in POST /packages/ or /models/."""
    return FileToken(file_token=uploads(request).complete(upload_id))


@router.post("/file-upload/{upload_id}/abort", status_code=204, summary="Drop a chunked upload")
def abort_upload(upload_id: str, request: Request) -> None:
    """Drop a chunked upload and the bytes received so far."""
    uploads(request).abort(upload_id)
