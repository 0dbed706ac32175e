"""Sessions: create one with its config, start it (one at a time), stop it, wait for it.

Start and stop are async endpoints because the controller runs on the event loop; their statestore
calls go through asyncio.to_thread so the loop never blocks.
"""

import asyncio
import threading
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from scaleout.api import compat, deps
from scaleout.api.routes_models import active_helper
from scaleout.api.settings import ApiSettings
from scaleout.errors import ScaleoutError
from scaleout.store.entities import Session, SessionConfig, SessionStatus, utcnow
from scaleout.store.statestore import Statestore

router = APIRouter(prefix="/sessions", tags=["sessions"])
ENDED = frozenset({SessionStatus.FINISHED, SessionStatus.FAILED, SessionStatus.TERMINATED})
NO_SEED = "no seed model: upload one with POST /api/v1/models/"
MAX_WAIT = 60.0


class SessionRequest(BaseModel):
    """A session to create: its name, how its rounds run, and the model it starts from."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200, description="a name for people; generated when empty")
    config: SessionConfig = Field(default_factory=SessionConfig)
    model_id: str | None = Field(None, description="the seed model; the latest committed model if omitted")


def _new_session(store: Statestore, body: SessionRequest) -> Session:
    if body.model_id is not None:
        store.models.get(body.model_id)  # NotFound: 404 naming the model
    session = Session(config=body.config, seed_model_id=body.model_id)
    session.name = body.name or f"session-{session.id[-8:]}"
    return session


def _seed_model_id(store: Statestore, session: Session) -> str:
    """The session's seed model, defaulting to the latest committed model; 400 when there is none."""
    if session.seed_model_id:
        return session.seed_model_id
    latest = store.models.list(sort_key="committed_at", sort_order="desc", limit=1).items
    if not latest:
        raise HTTPException(400, NO_SEED)
    return latest[0].id


def _refuse_if_one_is_started(store: Statestore) -> None:
    started = store.sessions.list({"status": SessionStatus.STARTED.value}, limit=1).items
    if started:
        other = started[0]
        raise HTTPException(
            409,
            f"session {other.name!r} ({other.id}) is Started; wait for it to end or stop it with "
            f"POST /api/v1/sessions/{other.id}/stop",
        )


def _prepare_start(
    store: Statestore, lock: threading.Lock, session: Session, is_new: bool, mark_started: bool
) -> Session:
    """Check a start may happen and record it; under the lock so two starts cannot both pass."""
    with lock:
        if not is_new:
            session = store.sessions.get(session.id)  # re-read: it may have changed since the request began
        if not is_new and session.status != SessionStatus.CREATED:
            raise HTTPException(
                409,
                f"session {session.id!r} is {session.status.value}; only a Created session can "
                "start: create a new session",
            )
        _refuse_if_one_is_started(store)
        changes: dict[str, Any] = {"seed_model_id": _seed_model_id(store, session)}
        if mark_started:  # without a controller nobody else will
            changes.update(status=SessionStatus.STARTED, started_at=utcnow())
        if is_new:
            return store.sessions.add(session.model_copy(update=changes))
        return store.sessions.update(session.id, changes)


async def _start(
    store: Statestore, lock: threading.Lock, controller: Any | None, session: Session, is_new: bool
) -> Session:
    session = await asyncio.to_thread(_prepare_start, store, lock, session, is_new, controller is None)
    if controller is None:
        return session
    try:
        await controller.start_session(session.id)
    except ScaleoutError as error:
        if is_new:  # the one-call start must not leave a Created session behind
            await asyncio.to_thread(store.sessions.delete, session.id)
        raise HTTPException(409, str(error)) from None
    return await asyncio.to_thread(store.sessions.get, session.id)


def _fedn_session_request(
    store: Statestore, settings: ApiSettings, body: compat.FednSessionRequest
) -> SessionRequest:
    """Our request for FEDn's body (api/compat.py): its seed, and its config in our fields."""
    helper = active_helper(store, settings)
    config = compat.session_config(body.session_config, helper)
    seed = body.seed_model_id or body.session_config.model_id
    return SessionRequest(name=body.name or "", config=config, model_id=seed)


@router.post("/", response_model=Session, status_code=201, summary="Create a session (not started)")
def create_session(
    body: compat.session_body(SessionRequest), store: deps.StatestoreDep, settings: deps.SettingsDep
) -> Session:
    """Record a session with its config; it runs only once started (POST /sessions/{id}/start). Takes our
    body or FEDn's (``seed_model_id`` and ``session_config``)."""
    if isinstance(body, compat.FednSessionRequest):
        body = _fedn_session_request(store, settings, body)
    return store.sessions.add(_new_session(store, body))


@router.post("/start", response_model=Session, status_code=201, summary="Create and start a session")
async def create_and_start_session(
    body: compat.start_body(SessionRequest),
    store: deps.StatestoreDep,
    lock: deps.SessionLockDep,
    controller: deps.ControllerDep,
) -> Session:
    """Create a session and start it at once. 409 when another session is Started; 400 when there is no seed
    model and none is named. Also takes FEDn's ``{session_id, rounds, round_timeout}``: start that Created
    session with those rounds."""
    if isinstance(body, compat.FednStartRequest):
        session = await asyncio.to_thread(_with_fedn_rounds, store, body)
        return await _start(store, lock, controller, session, is_new=False)
    session = await asyncio.to_thread(_new_session, store, body)
    return await _start(store, lock, controller, session, is_new=True)


def _with_fedn_rounds(store: Statestore, body: compat.FednStartRequest) -> Session:
    """The Created session FEDn starts, its config given the rounds and round_timeout of the call."""
    session = store.sessions.get(body.session_id)
    changes = {"config": compat.restarted_config(session.config, body)}
    # Only while Created: a started one is left as it is, and _start refuses it with 409 naming its status.
    created = {"status": SessionStatus.CREATED.value}
    return store.sessions.compare_and_set(session.id, created, changes) or session


@router.post("/{id}/start", response_model=Session, summary="Start a Created session")
async def start_session(
    id: str,
    store: deps.StatestoreDep,
    lock: deps.SessionLockDep,
    controller: deps.ControllerDep,
) -> Session:
    """Start a session that was created and never ran. 409 when it is not Created or another session is
    Started.
    """
    session = await asyncio.to_thread(store.sessions.get, id)
    return await _start(store, lock, controller, session, is_new=False)


@router.post("/{id}/stop", response_model=Session, summary="Stop a session; it ends Terminated")
async def stop_session(
    id: str,
    store: deps.StatestoreDep,
    controller: deps.ControllerDep,
) -> Session:
    """End a Created or Started session as Terminated; its running round fails "stopped". 409 when it already
    ended.
    """
    session = await asyncio.to_thread(store.sessions.get, id)
    if session.status in ENDED:
        raise HTTPException(409, f"session {id!r} already ended: it is {session.status.value}")
    if controller is not None:
        try:
            return await controller.stop_session(id)
        except ScaleoutError as error:
            raise HTTPException(409, str(error)) from None
    changes = {"status": SessionStatus.TERMINATED, "finished_at": utcnow()}
    return await asyncio.to_thread(store.sessions.update, id, changes)


@router.get("/{id}/wait", response_model=Session, summary="Long-poll: the session once it ended")
async def wait_for_session(
    id: str,
    store: deps.StatestoreDep,
    controller: deps.ControllerDep,
    timeout: Annotated[float, Query(gt=0, le=MAX_WAIT, description="seconds to wait at most")] = 30.0,
) -> Session:
    """Answers when the session ends or after `timeout` seconds, with the session as it is then."""
    session = await asyncio.to_thread(store.sessions.get, id)
    if session.status in ENDED or controller is None:
        return session
    return await controller.wait_for_session(id, timeout)


@router.get("/{id}/progress", summary="Live progress of the session's running round")
async def session_progress(
    id: str,
    store: deps.StatestoreDep,
    controller: deps.ControllerDep,
) -> dict[str, Any]:
    """The running round of the session, live from the controller: stage, clients selected, updates received
    and rejected, seconds elapsed. `progress` is null between rounds or when no controller runs it.
    """
    await asyncio.to_thread(store.sessions.get, id)
    live = controller.progress(id) if controller is not None else None
    return {"session_id": id, "progress": live}
