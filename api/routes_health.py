"""Liveness for load balancers and tests: no auth, and it says whether the statestore answers."""

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from scaleout.api import deps

router = APIRouter(tags=["health"])


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
