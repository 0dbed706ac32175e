"""gRPC transport security in one place: the channel every client of a combiner opens (the edge client,
the controller, the CLI), the combiner's server credentials, and what a TLS refusal means in words.

A channel is TLS when the combiner's record says it speaks TLS (``tls`` given), plaintext otherwise;
the token rides on every call through ``token_interceptors``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import grpc

from scaleout.proto.auth import token_interceptors
from scaleout.tls import CA_HINT, ClientTLS, ServerTLS, read_pem, system_roots

ChannelOptions = Sequence[tuple[str, Any]]

# How gRPC (BoringSSL) reports, in the status details, a server certificate that did not verify: not
# signed by a trusted CA (or expired, ...), or not naming the host dialled.
_UNTRUSTED = re.compile(r"CERTIFICATE_VERIFY_FAILED(?::\s*([^:]+))?")
_WRONG_NAME = re.compile(r"Hostname Verification Check failed|[Pp]eer name .* is not in peer certificate")


def open_channel(
    target: str, tls: ClientTLS | None, token: str | None = None, options: ChannelOptions = ()
) -> grpc.aio.Channel:
    """A grpc.aio channel to ``host:port``: TLS verified per ``tls`` when given, else plaintext."""
    interceptors = token_interceptors(token)
    if tls is None:
        return grpc.aio.insecure_channel(target, options=list(options), interceptors=interceptors)
    credentials = channel_credentials(tls)
    return grpc.aio.secure_channel(target, credentials, options=list(options), interceptors=interceptors)


def channel_credentials(tls: ClientTLS) -> grpc.ChannelCredentials:
    """Verify the server against ``tls.ca`` (the system's roots without one); present a client
    certificate when ``tls`` has one (mutual TLS)."""
    roots = read_pem(tls.ca, "--tls-ca") if tls.ca else system_roots()
    if tls.cert is None or tls.key is None:
        return grpc.ssl_channel_credentials(root_certificates=roots)
    return grpc.ssl_channel_credentials(
        root_certificates=roots,
        private_key=read_pem(tls.key, "--tls-client-key"),
        certificate_chain=read_pem(tls.cert, "--tls-client-cert"),
    )


def server_credentials(tls: ServerTLS) -> grpc.ServerCredentials:
    """The combiner's TLS: its certificate and key; with ``client_ca``, every caller must present a
    certificate signed by that CA (mutual TLS), or the handshake fails before any RPC."""
    tls.check()
    pair = (tls.key.read_bytes(), tls.cert.read_bytes())
    roots = read_pem(tls.client_ca, "--tls-client-ca") if tls.client_ca else None
    return grpc.ssl_server_credentials([pair], root_certificates=roots, require_client_auth=roots is not None)


def certificate_refusal(error: grpc.RpcError, target: str, tls: ClientTLS | None) -> str | None:
    """One line for a call that failed because the combiner's certificate did not verify, naming the
    CA file and the fix; None for any other failure. No retry fixes this: the caller should stop."""
    calls = (grpc.Call, grpc.aio.AioRpcError)  # a sync call's error is a grpc.Call, an aio one is not
    if tls is None or not isinstance(error, calls) or error.code() != grpc.StatusCode.UNAVAILABLE:
        return None
    details = error.details() or ""
    if untrusted := _UNTRUSTED.search(details):
        reason = (untrusted.group(1) or "certificate verify failed").strip()
        return (
            f"the combiner at {target} presented a certificate that does not verify against "
            f"{tls.ca_name} ({reason}); {CA_HINT}"
        )
    if _WRONG_NAME.search(details):
        host = target.rsplit(":", 1)[0]
        return (
            f"the combiner at {target} presented a certificate that does not name {host}; make its "
            f"certificate with `scaleout certs create --host {host}`, or advertise a host it names"
        )
    return None
