"""`scaleout client token …` and `scaleout client enrollment …`: client credentials, with the admin token.

A token or enrollment secret is printed once, when it is created; the API keeps only its hash.
"""

from __future__ import annotations

from typing import Any

import click

from scaleout.cli.remote import Remote, api_options
from scaleout.cli.tables import Column, field, print_records, when

DAY = 86400.0
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY}


def parse_duration(value: str) -> float:
    """A lifetime such as "90", "90s", "15m", "12h" or "7d", in seconds."""
    text = value.strip().lower()
    unit = UNITS.get(text[-1:])
    number = text[:-1] if unit else text
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a duration like 3600, 15m, 12h or 7d") from None
    if not seconds > 0:
        raise click.BadParameter(f"{value!r} must be longer than 0 seconds")
    return seconds


def _full_id(rows: list[dict[str, Any]], given: str, what: str) -> str:
    """The id a unique suffix (as tables may show it) names; the given text when none matches."""
    tail = given.removeprefix("…")
    matches = [row["id"] for row in rows if row["id"].endswith(tail)]
    if len(matches) > 1:
        raise click.ClickException(f"{given!r} matches {len(matches)} {what}; give more of the id")
    return matches[0] if matches else given


@click.group("token")
def token_group() -> None:
    """Client credentials: one per client, bound to its client id, revocable (needs the admin token)."""


@token_group.command("create")
@click.option("--name", required=True, help="Whom the credential is for (a site, a device).")
@click.option("--client-id", help="The client id it acts as (default: a new one).")
@api_options
def create_token(remote: Remote, name: str, client_id: str | None) -> None:
    """Issue a credential and print its token once: give it to the client as --token."""
    with remote.connect() as api:
        issued = api.create_client_token(name, client_id)
    remote.emit(issued, lambda: _print_secret(issued, "token", "scaleout client start --token"))


@token_group.command("list")
@api_options
def list_tokens(remote: Remote) -> None:
    """Every client credential (never its secret), revoked ones too."""
    with remote.connect() as api:
        tokens = api.get_client_tokens()
    remote.emit(tokens, lambda: print_records("client tokens", tokens["result"], TOKENS))


@token_group.command("revoke")
@click.argument("credential_id")
@api_options
def revoke_token(remote: Remote, credential_id: str) -> None:
    """Revoke a credential: its client is refused and disconnected within seconds."""
    with remote.connect() as api:
        full = _full_id(api.get_client_tokens()["result"], credential_id, "client tokens")
        revoked = api.revoke_client_token(full)
    remote.emit(
        revoked,
        lambda: click.echo(f"revoked {revoked['id']} ({revoked['name']}) of client {revoked['client_id']}"),
    )


@click.group("enrollment")
def enrollment_group() -> None:
    """Enrollment secrets: a client exchanges one for its own credential (needs the admin token)."""


@enrollment_group.command("create")
@click.option("--name", default="", help="What the secret is for (a fleet, a site).")
@click.option(
    "--uses", type=click.IntRange(1, 1_000_000), default=1, show_default=True, help="Clients it may enroll."
)
@click.option("--expires-in", default="1d", show_default=True, help="Lifetime: seconds, or 15m, 12h, 7d.")
@api_options
def create_enrollment(remote: Remote, name: str, uses: int, expires_in: str) -> None:
    """Issue an enrollment secret and print it once: give it to clients as --enroll-secret."""
    seconds = parse_duration(expires_in)
    with remote.connect() as api:
        issued = api.create_enrollment(name, uses, seconds)
    remote.emit(issued, lambda: _print_secret(issued, "secret", "scaleout client start --enroll-secret"))


@enrollment_group.command("list")
@api_options
def list_enrollments(remote: Remote) -> None:
    """Every enrollment secret (never the secret): uses left, expiry, revocation."""
    with remote.connect() as api:
        rows = api.get_enrollments()
    remote.emit(rows, lambda: print_records("enrollment secrets", rows["result"], ENROLLMENTS))


@enrollment_group.command("revoke")
@click.argument("enrollment_id")
@api_options
def revoke_enrollment(remote: Remote, enrollment_id: str) -> None:
    """Revoke an enrollment secret: no client can enroll with it any more."""
    with remote.connect() as api:
        full = _full_id(api.get_enrollments()["result"], enrollment_id, "enrollment secrets")
        revoked = api.revoke_enrollment(full)
    remote.emit(revoked, lambda: click.echo(f"revoked enrollment secret {revoked['id']}"))


def _print_secret(issued: dict[str, Any], key: str, usage: str) -> None:
    name = f" ({issued['name']})" if issued.get("name") else ""
    who = f" for client {issued['client_id']}" if issued.get("client_id") else ""
    click.echo(f"created {issued['id']}{name}{who}; shown only now, store it safely:", err=True)
    click.echo(issued[key])
    click.echo(f"use it with: {usage} <{key}>", err=True)


def text(value: Any) -> str:
    return "" if value is None else str(value)


TOKENS = [
    Column("id", field("id", text)),
    Column("name", field("name", text)),
    Column("client id", field("client_id", text)),
    Column("created", field("created_at", when)),
    Column("revoked", field("revoked_at", when)),
]
ENROLLMENTS = [
    Column("id", field("id", text)),
    Column("name", field("name", text)),
    Column("uses left", field("uses_left"), "right"),
    Column("expires", field("expires_at", when)),
    Column("revoked", field("revoked_at", when)),
]
