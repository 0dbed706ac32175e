"""The FastAPI app: every route under /api/v1, OpenAPI at /docs (offline), the controller on the same loop."""

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from scaleout import __version__
from scaleout.api import (
    compat,
    routes_clients,
    routes_credentials,
    routes_dashboard,
    routes_health,
    routes_metrics,
    routes_models,
    routes_packages,
    routes_sessions,
    routes_stats,
    routes_token_exchange,
)
from scaleout.api.auth import API_PREFIX, AuthMiddleware, bearer_scheme
from scaleout.api.checks import InvalidModel
from scaleout.api.metrics import MetricsMiddleware, app_registry
from scaleout.api.openapi import create_documented_app
from scaleout.api.routes_entities import entity_router
from scaleout.api.settings import ApiSettings
from scaleout.api.uploads import BodyLimitMiddleware
from scaleout.api.validation import document_error_detail, request_validation_error
from scaleout.credentials import Authenticator, controller_token
from scaleout.errors import InvalidId, NotFound, PackageError, ScaleoutError
from scaleout.metrics import TimedStatestore
from scaleout.store.entities import Client, Combiner, Event, Model, Package, Round, Session, Validation
from scaleout.store.repository import ModelRepository
from scaleout.store.statestore import DuplicateId, InvalidFilter, Statestore
from scaleout.store.uri import open_model_repository, open_statestore

ENTITY_FAMILIES: list[tuple[str, type, Callable[[Statestore], Any]]] = [
    ("sessions", Session, lambda store: store.sessions),
    ("rounds", Round, lambda store: store.rounds),
    ("models", Model, lambda store: store.models),
    ("validations", Validation, lambda store: store.validations),
    ("clients", Client, lambda store: store.clients),
    ("combiners", Combiner, lambda store: store.combiners),
    ("packages", Package, lambda store: store.packages),
    ("events", Event, lambda store: store.events),
]

# Our errors as HTTP answers; the message (naming what was wrong and the fix) is the detail.
ERROR_STATUS: list[tuple[type[Exception], int]] = [
    (NotFound, 404),
    (DuplicateId, 409),
    (InvalidFilter, 422),
    (InvalidId, 422),
    (PackageError, 422),
    (InvalidModel, 422),
    (ScaleoutError, 400),
]


def create_app(
    settings: ApiSettings,
    statestore: Statestore | None = None,
    repository: ModelRepository | None = None,
    controller: Any | None = None,
) -> FastAPI:
    """The API over these stores, or over stores (and a controller) the app opens from `settings`.

    Stores passed in are the caller's to close and the app runs exactly the controller given (or none);
    without stores the lifespan opens them by URI and hosts a Controller over them.
    A controller is started and closed by the lifespan, as it needs the server's event loop.
    """
    app = create_documented_app(
        title="scaleout-edge",
        version=__version__,
        description="Sessions, rounds, models, compute packages, clients and combiners of a federation.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.statestore = statestore
    app.state.repository = repository
    app.state.controller = controller
    app.state.authenticator = None  # made by the lifespan, over the statestore it opens or was given
    app.state.owns_stores = statestore is None
    app.state.session_lock = threading.Lock()
    app.state.metrics = app_registry(app.state)
    app.state.chunked_uploads = compat.ChunkedUploads()
    _add_routes(app)
    _add_error_handlers(app)
    # Outermost first: auth is checked before the body limit reads anything.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes)
    if settings.token:
        app.add_middleware(AuthMiddleware, public_docs=settings.public_docs)
    app.add_middleware(MetricsMiddleware)  # outside auth: refused requests are counted too
    app.add_middleware(compat.CompatMiddleware)  # FEDn's paging headers and filter names, before all
    return app


def _add_routes(app: FastAPI) -> None:
    # Declared in open mode too: the document describes the API, whichever way this one was started.
    secured = [Depends(bearer_scheme)]
    app.include_router(routes_health.router, prefix=API_PREFIX)
    app.include_router(routes_token_exchange.router)  # full paths: /api/auth/refresh is outside /api/v1
    # Specific routes before the generic ones, so /packages/active is not taken for an id.
    for router in (
        compat.router,  # before the clients entity routes, which would take /clients/config
        routes_sessions.router,
        routes_stats.router,
        routes_packages.router,
        routes_models.router,
        routes_credentials.router,  # before the clients entity routes, which would take /clients/tokens
        routes_clients.router,
    ):
        app.include_router(router, prefix=API_PREFIX, dependencies=secured)
    for family, entity, select in ENTITY_FAMILIES:
        app.include_router(entity_router(family, entity, select), prefix=API_PREFIX, dependencies=secured)
    app.include_router(routes_metrics.router)  # /metrics, where Prometheus looks; the table guards it
    # The page outside /api/v1 (it loads without a token); its read routes inside, secured.
    routes_dashboard.mount(app, API_PREFIX, secured)
    # FEDn calls the events statuses.
    statuses = entity_router("statuses", Event, lambda store: store.events)
    app.include_router(statuses, prefix=API_PREFIX, dependencies=secured)
    app.include_router(compat.root_router, dependencies=secured)


def _add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, request_validation_error)
    document_error_detail(app)
    for error_type, status in ERROR_STATUS:
        app.add_exception_handler(error_type, _handler(status))


def _handler(status: int) -> Callable[[Request, Exception], Any]:
    async def handle(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status)

    return handle


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state = app.state
    async with AsyncExitStack() as stack:
        if state.owns_stores:
            await _open_stores(app, stack)
        settings: ApiSettings = state.settings
        state.authenticator = Authenticator(
            state.statestore,
            settings.token,
            controller_token(settings.token, settings.controller_token),
            settings.credential_cache_seconds,
        )
        stack.callback(state.chunked_uploads.close)
        if state.controller is not None:
            await state.controller.start()
            stack.push_async_callback(state.controller.close)
        yield


async def _open_stores(app: FastAPI, stack: AsyncExitStack) -> None:
    """Open the stores named in the settings (closed on shutdown) and host the controller."""
    settings: ApiSettings = app.state.settings
    app.state.statestore = TimedStatestore(await asyncio.to_thread(open_statestore, settings.db_uri))
    stack.callback(app.state.statestore.close)
    app.state.repository = await asyncio.to_thread(
        open_model_repository, settings.models_uri, settings.s3_credentials
    )
    app.state.controller = _make_controller(app.state.statestore, app.state.repository, settings)


def _make_controller(statestore: Statestore, repository: ModelRepository, settings: ApiSettings) -> Any:
    # Imported here: an app given its stores (tests, `scaleout local`) runs the controller it is given.
    from scaleout.controller import Controller, ControllerSettings

    # The combiners take Control calls only with the controller's service token.
    # A stable owner id: an API restarted on the same host and port resumes its sessions at once,
    # while another API process waits for their leases to lapse.
    controller_settings = ControllerSettings(
        combiner_online_window=settings.combiner_online_seconds,
        token=controller_token(settings.token, settings.controller_token),
        tls=settings.combiner_tls,
        owner_id=f"{socket.gethostname()}:{settings.port}",
        lease_seconds=settings.lease_seconds,
        sweep_grace=settings.sweep_grace,
    )
    return Controller(statestore, repository, controller_settings)
