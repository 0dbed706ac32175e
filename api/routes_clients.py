"""Client assignment: an edge client asks which combiner to connect to (contract: POST /clients/add)."""

from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from scaleout.api import deps
from scaleout.api.auth import require_own_client
from scaleout.errors import NotFound
from scaleout.store.entities import Client, Combiner, NodeStatus, utcnow
from scaleout.store.statestore import Statestore

router = APIRouter(prefix="/clients", tags=["clients"])
NOT_READY = (
    "no compute package is active yet; upload one with POST /api/v1/packages/ "
    "(APIClient.set_active_package), or start the client with --local-package"
)


class ClientAddRequest(BaseModel):
    # Extra keys are ignored: other clients (e.g. the official one) send more than the contract needs.
    model_config = ConfigDict(extra="ignore")

    client_id: str = Field(min_length=1, max_length=200)
    name: str = Field("", max_length=200)
    package: Literal["remote", "local"] = "remote"


class CombinerAddress(BaseModel):
    host: str
    port: int
    name: str
    tls: bool = Field(
        False, description="the combiner serves TLS: dial it with TLS, verifying its certificate"
    )


class ClientAssignment(BaseModel):
    client_id: str
    combiner: CombinerAddress
    package: Literal["remote", "local"]
    helper_type: str
    # The official Scaleout Edge client (scaleout==1.1.0) reads the combiner's address from these
    # top-level fields (GrpcConnectionOptions.from_dict) and defaults to TLS without grpc_secure.
    host: str = Field(description="the combiner's host (same as combiner.host)")
    public_hostname: str = Field(description="the combiner's host, for the official client")
    internal_hostname: str = Field(description="the combiner's host, for the official client")
    port: int = Field(description="the combiner's port (same as combiner.port)")
    grpc_secure: bool = Field(description="the combiner serves TLS (same as combiner.tls)")


def least_loaded_combiner(store: Statestore, online_seconds: float, client_id: str) -> Combiner:
    """The online combiner with the fewest live clients assigned (ties by name); 503 when none is online.

    A combiner's load is counted in the statestore, two indexed counts per combiner, never by reading
    every client: the clients it holds online, plus those assigned to it within the online window that
    have not connected yet. Not the combiner's own client_count: that lags by a registry interval, so a
    burst of clients joining at once would all land on one combiner. Not last_seen alone either: a
    connected client's record is rewritten only every few minutes (combiner client_write_interval).
    """
    since = utcnow() - timedelta(seconds=online_seconds)
    online = store.combiners.seen_since(since, {"status": NodeStatus.ONLINE.value})
    if not online:
        raise HTTPException(
            503,
            f"no combiner is online (none seen in the last {online_seconds:g} s); "
            "start one with `scaleout combiner start` and retry",
        )
    try:
        own: Client | None = store.clients.get(client_id)
    except NotFound:
        own = None

    def load(combiner: Combiner) -> tuple[int, str]:
        connected = store.clients.count({"combiner_id": combiner.id, "status": NodeStatus.ONLINE.value})
        joining = store.clients.count(
            {"combiner_id": combiner.id, "status": NodeStatus.OFFLINE.value, "last_seen": {"$gte": since}}
        )
        counted = own is not None and own.combiner_id == combiner.id and _is_counted(own, since)
        return connected + joining - counted, combiner.name

    return min(online, key=load)


def _is_counted(client: Client, since: datetime) -> bool:
    return client.status == NodeStatus.ONLINE or client.last_seen >= since


def _record_assignment(
    store: Statestore, body: ClientAddRequest, combiner: Combiner, package_checksum: str | None
) -> None:
    """Upsert the Client with its combiner and the package it will run (the active one's sha256 when it
    downloads it; None with its own local package), keeping what the combiner recorded about it."""
    try:
        client = store.clients.get(body.client_id)
    except NotFound:
        client = Client(id=body.client_id)
    changes = {
        "name": body.name or client.name or body.client_id,
        "combiner_id": combiner.id,
        "last_seen": utcnow(),
        "package_checksum": package_checksum,
    }
    store.clients.upsert(client.model_copy(update=changes))


@router.post(
    "/add",
    response_model=ClientAssignment,
    summary="Assign a client to the least-loaded online combiner",
    responses={203: {"description": "no compute package is active yet; retry later"}, 503: {}},
)
def add_client(
    body: ClientAddRequest,
    store: deps.StatestoreDep,
    settings: deps.SettingsDep,
    caller: deps.PrincipalDep,
) -> Any:
    """Assign the calling client to the least-loaded online combiner and tell it which package and helper to
    use. 203 when no package is active yet (retry later); 503 when no combiner is online.
    """
    require_own_client(caller, body.client_id)
    try:
        active = store.packages.active()
        helper, checksum = active.helper, active.sha256 if body.package == "remote" else None
    except NotFound:
        if body.package == "remote":
            return JSONResponse({"message": NOT_READY}, status_code=203)
        helper, checksum = settings.default_helper, None
    combiner = least_loaded_combiner(store, settings.combiner_online_seconds, body.client_id)
    _record_assignment(store, body, combiner, checksum)
    return ClientAssignment(
        client_id=body.client_id,
        combiner=CombinerAddress(
            host=combiner.address, port=combiner.port, name=combiner.name, tls=combiner.tls
        ),
        package=body.package,
        helper_type=helper,
        host=combiner.address,
        public_hostname=combiner.address,
        internal_hostname=combiner.address,
        port=combiner.port,
        grpc_secure=combiner.tls,
    )
