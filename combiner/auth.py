"""Roles on the combiner's gRPC services (CombinerClient, ModelService, Control), by scaleout.roles.

Checked in a server interceptor, before any servicer runs: a refused TaskStream never registers a
client, a refused Upload never spools a byte. Per call: the bearer token is looked up (a cached dict
entry; the statestore only on a miss, off the event loop), the method's rule is read from the one
table, a client's rate limit is taken, and a client is held to its own client id — in the request's
``client_id`` (wrapped handler) or, for Upload, the ``client-id`` metadata that names the spooled update.

Revocation: ``RevocationWatcher`` asks the statestore every few seconds for client credentials revoked
lately, drops them from the cache and ends their clients' task streams with UNAUTHENTICATED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import grpc

from scaleout.combiner.clients import ClientRegistry
from scaleout.combiner.interceptors import wrap
from scaleout.combiner.ratelimit import RateLimiter
from scaleout.credentials import Authenticator, credential_id_of
from scaleout.proto.auth import AUTHORIZATION
from scaleout.roles import RPC_RULES, Principal, Role, Rule, allowed_roles
from scaleout.store.entities import CredentialKind, utcnow
from scaleout.store.statestore import Statestore

log = logging.getLogger(__name__)

TOKEN_HELP = (
    "missing, wrong or revoked token: start the client with its client credential (--token, issued by "
    "`scaleout client token create`) or the federation's token (--token / SCALEOUT_API_TOKEN)"
)
REVOKED = "this client's credential was revoked; ask an operator for a new one"
# Revocation times come from the API's clock; looking this far back covers clocks that disagree.
CLOCK_MARGIN = timedelta(minutes=10)

Metadata = Sequence[tuple[str, str | bytes]]


def _metadata_value(metadata: Metadata | None, key: str) -> str:
    for name, value in metadata or ():
        if name == key:
            return value if isinstance(value, str) else value.decode("latin-1")
    return ""


def bearer_token(metadata: Metadata | None) -> str:
    scheme, _, token = _metadata_value(metadata, AUTHORIZATION).partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def not_allowed(rule: Rule | None, principal: Principal, method: str) -> str:
    if rule is None:
        return f"{method} is not in the access table (scaleout/roles.py RPC_RULES), so nobody may call it"
    return f"a {principal.role} credential may not call {method}; only {allowed_roles(rule)} may"


def other_client(principal: Principal, given: str) -> str:
    return (
        f"this client credential belongs to client {principal.client_id!r}; it may not act as client "
        f"{given[:200]!r}"
    )


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED without a known token, PERMISSION_DENIED outside the role's rules or the client's
    own id, RESOURCE_EXHAUSTED past the client's rate limit."""

    def __init__(self, authenticator: Authenticator, limiter: RateLimiter | None) -> None:
        self._auth = authenticator
        self._limiter = limiter

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        # An unknown method (handler None) is left to gRPC's UNIMPLEMENTED: it reveals nothing.
        if handler is None:
            return None
        rule = RPC_RULES.get(details.method)
        if rule is not None and rule.public:
            return handler
        metadata = details.invocation_metadata
        token = bearer_token(metadata)
        principal = await self._auth.authenticate(token)
        if principal is None:
            # A revoked client learns why, whichever of its calls is refused first.
            why = REVOKED if credential_id_of(token) in self._auth.revoked else TOKEN_HELP
            return refuse(handler, grpc.StatusCode.UNAUTHENTICATED, why)
        if rule is None or not rule.allows(principal):
            return refuse(
                handler, grpc.StatusCode.PERMISSION_DENIED, not_allowed(rule, principal, details.method)
            )
        if principal.role is not Role.CLIENT:
            return handler
        if self._limiter is not None and not self._limiter.allow(principal.credential_id or ""):
            limit = self._limiter
            message = (
                f"client {principal.client_id} exceeded the combiner's rate limit of {limit.rate:g} calls/s "
                f"(burst {limit.burst:g}); slow down, or raise --client-rate-limit on the combiner"
            )
            return refuse(handler, grpc.StatusCode.RESOURCE_EXHAUSTED, message)
        if rule.client_id == "metadata":
            given = _metadata_value(metadata, "client-id")
            if given != principal.client_id:
                return refuse(handler, grpc.StatusCode.PERMISSION_DENIED, other_client(principal, given))
        if rule.client_id == "request":
            return _own_client_only(handler, principal, self._auth)
        return handler


def _own_client_only(
    handler: grpc.RpcMethodHandler, principal: Principal, auth: Authenticator
) -> grpc.RpcMethodHandler:
    """The handler, refusing a request whose client_id is not the principal's; a stream ended by
    revocation ends UNAUTHENTICATED, so the client stops instead of reconnecting."""

    def check(request: Any, context: grpc.aio.ServicerContext) -> Awaitable[None] | None:
        if request.client_id != principal.client_id:
            return context.abort(
                grpc.StatusCode.PERMISSION_DENIED, other_client(principal, request.client_id)
            )
        return None

    if not handler.response_streaming:
        return wrap(handler, before=check)

    async def until_revoked(
        responses: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        async for message in responses:
            yield message
        if principal.credential_id in auth.revoked:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, REVOKED)

    return wrap(handler, before=check, responses=until_revoked)


class RevocationWatcher:
    """Every ``interval`` seconds: client credentials revoked lately are forgotten and their clients'
    task streams ended. One indexed query per interval, whatever the number of clients."""

    def __init__(
        self, statestore: Statestore, auth: Authenticator, registry: ClientRegistry, interval: float
    ) -> None:
        self._statestore = statestore
        self._auth = auth
        self._registry = registry
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="revocation-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # a store outage: log and look again at the next interval
                log.exception("checking the statestore for revoked client credentials failed")
            await asyncio.sleep(self._interval)

    async def check(self) -> None:
        since = utcnow() - CLOCK_MARGIN
        filters = {"kind": CredentialKind.CLIENT.value, "revoked_at": {"$gte": since}}
        page = await asyncio.to_thread(self._statestore.credentials.list, filters)
        fresh = [c for c in page.items if c.id not in self._auth.revoked]
        if not fresh:
            return
        self._auth.forget({c.id for c in fresh})
        for credential in fresh:
            if credential.client_id and self._registry.end_stream(credential.client_id):
                log.warning(
                    "client %s disconnected: its credential %s (%s) was revoked",
                    credential.client_id,
                    credential.id,
                    credential.name,
                )


def refuse(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind (unary/stream in and out) as the one refused, that only aborts."""

    def abort(request: Any, context: grpc.aio.ServicerContext) -> Awaitable[None]:
        return context.abort(code, message)

    return wrap(handler, before=abort)
