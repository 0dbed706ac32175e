"""TLS settings shared by every process that dials a server, and the rules for serving in plaintext.

A process that dials (client, controller, CLI) verifies servers against ``ClientTLS.ca``, the system's
roots when it is None, and presents ``cert``/``key`` to combiners that require mutual TLS. Plaintext is
for loopback (and `scaleout local`): a server bound elsewhere without TLS logs ``warn_if_exposed``.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

from scaleout.errors import ScaleoutError

CA_HINT = "pass the CA that signed the server's certificate with --tls-ca (env SCALEOUT_TLS_CA)"


class TLSError(ScaleoutError):
    """A certificate or key cannot be read, or a server's certificate failed verification."""


@dataclass(frozen=True)
class ClientTLS:
    """How this process verifies servers (``ca``: a PEM bundle, None for the system's roots) and,
    for combiners that require mutual TLS, the certificate and key it presents."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise TLSError(
                "--tls-client-cert and --tls-client-key go together: give both (mutual TLS) or neither"
            )

    def check(self) -> None:
        """Raise TLSError naming the flag and file when a given file is unreadable or not PEM."""
        for path, flag in (
            (self.ca, "--tls-ca"),
            (self.cert, "--tls-client-cert"),
            (self.key, "--tls-client-key"),
        ):
            if path is not None:
                read_pem(path, flag)

    @property
    def ca_name(self) -> str:
        """The trust anchors, as messages name them."""
        return f"the CA in {self.ca}" if self.ca else "the system's trusted CAs"


@dataclass(frozen=True)
class ServerTLS:
    """A server's certificate and key (PEM); ``client_ca``: require client certificates it signed."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @classmethod
    def from_flags(
        cls, cert: Path | None, key: Path | None, client_ca: Path | None = None
    ) -> ServerTLS | None:
        """The settings of --tls-cert/--tls-key(/--tls-client-ca), None for plaintext; a half-given
        pair is a TLSError naming the missing flag."""
        if cert is None and key is None:
            if client_ca is not None:
                raise TLSError("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first")
            return None
        if cert is None or key is None:
            missing = "--tls-cert" if cert is None else "--tls-key"
            raise TLSError(f"{missing} is missing: --tls-cert and --tls-key go together")
        return cls(cert, key, client_ca)

    def check(self) -> None:
        """Raise TLSError naming the file when a file is unreadable or the key does not fit the
        certificate: gRPC would only say that it failed to bind, uvicorn would print a traceback."""
        read_pem(self.cert, "--tls-cert")
        read_pem(self.key, "--tls-key")
        if self.client_ca is not None:
            read_pem(self.client_ca, "--tls-client-ca")
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.cert, self.key)
        except ssl.SSLError as error:
            raise TLSError(
                f"--tls-cert {self.cert} and --tls-key {self.key} are not a usable pair ({error.reason}); "
                "give the certificate and the key made with it"
            ) from error


def read_pem(path: Path, flag: str) -> bytes:
    """The file's bytes; a missing or unreadable file is a TLSError naming the flag that gave it."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TLSError(
            f"cannot read {flag} {path}: {error.strerror}; check the path and its permissions"
        ) from error
    if b"-----BEGIN " not in data:
        raise TLSError(f"{flag} {path} is not a PEM file; give the .pem `scaleout certs create` wrote")
    return data


def ssl_context(ca: Path | None) -> ssl.SSLContext:
    """An SSL context for https clients (httpx): verify against ``ca``, else the system's roots."""
    if ca is None:
        return ssl.create_default_context()
    read_pem(ca, "--tls-ca")  # a clear message, not OpenSSL's, for a wrong path
    try:
        return ssl.create_default_context(cafile=str(ca))
    except ssl.SSLError as error:
        raise TLSError(
            f"--tls-ca {ca} holds no usable CA certificate ({error.reason}); check the file"
        ) from error


def system_roots() -> bytes | None:
    """The system's CA bundle as PEM, for gRPC (which otherwise uses roots of its own); None if absent."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_bytes()
    return None


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses: plaintext there never crosses a network."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_exposed(log: logging.Logger, what: str, host: str, port: int) -> None:
    """Log a loud warning when a plaintext server is bound beyond loopback.

    Not an error: a private network or a TLS-terminating proxy in front can make plaintext a choice.
    """
    if is_loopback(host):
        return
    log.warning(
        "%s serves PLAINTEXT on %s:%d: tokens and models cross the network readable by anyone on the "
        "path; give it --tls-cert and --tls-key (`scaleout certs create` makes them), or bind it to "
        "127.0.0.1",
        what,
        host,
        port,
    )


def verification_failure(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error behind an https failure (httpx wraps it), if that was it."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def https_refusal(error: BaseException, url: httpx.URL, ca: Path | None) -> str | None:
    """One line for an https connection refused because the server's certificate did not verify."""
    failure = verification_failure(error)
    if failure is None:
        return None
    return (
        f"the API at {url.scheme}://{url.netloc.decode()} presented a certificate that does not verify "
        f"against {ClientTLS(ca).ca_name} ({failure.verify_message}); {CA_HINT}"
    )


class HTTPSTransport(httpx.HTTPTransport):
    """httpx's transport verifying servers against ``ca`` (the system's roots without one); a
    certificate that does not verify is a TLSError saying so, not a retryable connection error."""

    def __init__(self, ca: Path | None) -> None:
        super().__init__(verify=ssl_context(ca))
        self.ca = ca

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except httpx.ConnectError as error:
            if refusal := https_refusal(error, request.url, self.ca):
                raise TLSError(refusal) from error
            raise


class AsyncHTTPSTransport(httpx.AsyncHTTPTransport):
    """HTTPSTransport for httpx.AsyncClient."""

    def __init__(self, ca: Path | None) -> None:
        super().__init__(verify=ssl_context(ca))
        self.ca = ca

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.ConnectError as error:
            if refusal := https_refusal(error, request.url, self.ca):
                raise TLSError(refusal) from error
            raise
