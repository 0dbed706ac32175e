"""Request-scoped access to what the app holds: the statestore, the model repository, the controller."""

import threading
from typing import Annotated, Any

from fastapi import Depends, Request

from scaleout.api.auth import OPEN_MODE
from scaleout.api.settings import ApiSettings
from scaleout.credentials import Authenticator
from scaleout.roles import Principal
from scaleout.store.repository import ModelRepository
from scaleout.store.statestore import Statestore


def statestore(request: Request) -> Statestore:
    return request.app.state.statestore


def repository(request: Request) -> ModelRepository:
    return request.app.state.repository


def settings(request: Request) -> ApiSettings:
    return request.app.state.settings


def controller(request: Request) -> Any | None:
    """The controller hosted by this API, or None (an API without one only records sessions)."""
    return request.app.state.controller


def session_lock(request: Request) -> threading.Lock:
    """Serialises "is another session Started?" with starting one, within this API process."""
    return request.app.state.session_lock


def principal(request: Request) -> Principal:
    """Who is calling: set by the auth middleware; without auth (open mode) an admin."""
    return request.scope.get("state", {}).get("principal", OPEN_MODE)


def authenticator(request: Request) -> Authenticator | None:
    return request.app.state.authenticator


# Annotated dependencies, so endpoint signatures stay short and carry no calls in their defaults.
StatestoreDep = Annotated[Statestore, Depends(statestore)]
RepositoryDep = Annotated[ModelRepository, Depends(repository)]
SettingsDep = Annotated[ApiSettings, Depends(settings)]
ControllerDep = Annotated[Any | None, Depends(controller)]
SessionLockDep = Annotated[threading.Lock, Depends(session_lock)]
PrincipalDep = Annotated[Principal, Depends(principal)]
AuthenticatorDep = Annotated[Authenticator | None, Depends(authenticator)]
