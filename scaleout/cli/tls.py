"""The TLS flags every command shares: a server's certificate and key, and how a dialling process
verifies servers (and proves itself to combiners that require mutual TLS).

Each decorator hands the command one settings object, checked here so that a wrong path is a usage
error naming the flag before anything starts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from scaleout.tls import ClientTLS, ServerTLS, TLSError

PEM = click.Path(dir_okay=False, path_type=Path)


def server_tls_options(mutual: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--tls-cert and --tls-key (and, with ``mutual``, --tls-client-ca); the command gets
    ``server_tls: ServerTLS | None`` (None: plaintext)."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def wrapper(
            *args: Any,
            tls_cert: Path | None,
            tls_key: Path | None,
            tls_client_ca: Path | None = None,
            **kw: Any,
        ) -> Any:
            try:
                server_tls = ServerTLS.from_flags(tls_cert, tls_key, tls_client_ca)
                if server_tls is not None:
                    server_tls.check()
            except TLSError as error:
                raise click.UsageError(str(error)) from None
            return command(*args, server_tls=server_tls, **kw)

        options = [
            click.option(
                "--tls-cert",
                envvar="SCALEOUT_TLS_CERT",
                type=PEM,
                help="Serve TLS with this certificate (PEM, e.g. server.pem of `scaleout certs create`); "
                "with --tls-key (env SCALEOUT_TLS_CERT). Without them: plaintext.",
            ),
            click.option(
                "--tls-key",
                envvar="SCALEOUT_TLS_KEY",
                type=PEM,
                help="The private key of --tls-cert (PEM) (env SCALEOUT_TLS_KEY).",
            ),
        ]
        if mutual:
            options.append(
                click.option(
                    "--tls-client-ca",
                    envvar="SCALEOUT_TLS_CLIENT_CA",
                    type=PEM,
                    help="Mutual TLS: require every caller (clients, controller, CLI) to present a "
                    "certificate signed by this CA (env SCALEOUT_TLS_CLIENT_CA).",
                )
            )
        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper

    return decorate


ca_option = click.option(
    "--tls-ca",
    envvar="SCALEOUT_TLS_CA",
    type=PEM,
    help="CA bundle (PEM) that https APIs and TLS combiners are verified against, e.g. ca.pem of "
    "`scaleout certs create` [default: the system's trusted CAs] (env SCALEOUT_TLS_CA).",
)


def client_tls_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--tls-ca, --tls-client-cert and --tls-client-key; the command gets ``tls: ClientTLS``."""

    @functools.wraps(command)
    def wrapper(
        *args: Any, tls_ca: Path | None, tls_client_cert: Path | None, tls_client_key: Path | None, **kw: Any
    ) -> Any:
        try:
            tls = ClientTLS(tls_ca, tls_client_cert, tls_client_key)
            tls.check()
        except TLSError as error:
            raise click.UsageError(str(error)) from None
        return command(*args, tls=tls, **kw)

    options = [
        ca_option,
        click.option(
            "--tls-client-cert",
            envvar="SCALEOUT_TLS_CLIENT_CERT",
            type=PEM,
            help="Certificate (PEM) presented to combiners that require mutual TLS, e.g. client.pem "
            "(env SCALEOUT_TLS_CLIENT_CERT).",
        ),
        click.option(
            "--tls-client-key",
            envvar="SCALEOUT_TLS_CLIENT_KEY",
            type=PEM,
            help="The private key of --tls-client-cert (env SCALEOUT_TLS_CLIENT_KEY).",
        ),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper
