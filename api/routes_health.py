"""Health for probes, load balancers and tests: no auth.

``/health/live`` says only that the process serves requests (a liveness probe restarts a process that
stops answering, never one whose statestore is down: a restart would not bring the statestore back).
``/health/ready`` says whether requests can be served: the statestore and the model repository answer.
``/health`` (the statestore alone) is kept for what already calls it.
"""

import asyncio
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from scaleout.api import deps

router = APIRouter(tags=["health"])
# An id no model has: asking whether it exists makes one round trip to the repository.
PROBE_MODEL_ID = "readiness-probe"


@router.get("/health", summary="Is the API up and its statestore reachable?")
async def health(store: deps.StatestoreDep) -> JSONResponse:
    """200 with {"status": "ok"} when the API serves and its statestore answers; 503 naming the statestore's
    error otherwise. Needs no token.
    """
    try:
        await asyncio.to_thread(store.ping)
    except Exception as error:  # any backend failure is the answer here, not a 500
        return JSONResponse({"status": "error", "statestore": str(error)}, status_code=503)
    return JSONResponse({"status": "ok", "statestore": "ok"})


@router.get("/health/live", summary="Is the API process serving requests? (liveness)")
async def live() -> dict[str, str]:
    """Liveness: 200 whenever the process answers; a probe restarts the API only when this fails."""
    return {"status": "ok"}


@router.get("/health/ready", summary="Can the API serve: statestore and model repository reachable?")
async def ready(store: deps.StatestoreDep, repository: deps.RepositoryDep) -> JSONResponse:
    """Readiness: 200 when the statestore and the model repository answer, else 503 naming which did not."""
    checks = await asyncio.gather(
        _check(store.ping, "the statestore"),
        _check(lambda: repository.model_exists(PROBE_MODEL_ID), f"the model repository {repository.uri}"),
    )
    body = {"statestore": checks[0], "model_repository": checks[1]}
    ok = all(check == "ok" for check in checks)
    return JSONResponse({"status": "ok" if ok else "error", **body}, status_code=200 if ok else 503)


async def _check(call: Callable[[], object], what: str) -> str:
    """'ok', or what did not answer and why."""
    try:
        await asyncio.to_thread(call)
    except Exception as error:  # any backend failure is the answer here, not a 500
        return f"{what} did not answer: {type(error).__name__}: {error}"
    return "ok"
