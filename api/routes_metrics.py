"""/metrics: Prometheus' text format, on the API's own port (api/metrics.py says what is counted)."""

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from scaleout.api.metrics import exposition

router = APIRouter(include_in_schema=False)  # Prometheus' format, not part of the REST API


@router.get(
    "/metrics",
    summary="Prometheus metrics of this API process and of the federation's records",
    response_class=Response,
)
async def metrics(request: Request) -> Response:
    body = await asyncio.to_thread(exposition, request.app.state.metrics)  # statestore counts block
    return Response(body, media_type=CONTENT_TYPE_LATEST)
