"""What every command that drives a running federation shares: where the API is, its token, and
whether to print tables or the API's raw JSON.

Connection failures and API errors become one line naming the URL and the fix, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import httpx

from scaleout.api.client import APIClient, APIError
from scaleout.cli.tls import ca_option
from scaleout.client.settings import DEFAULT_API_URL
from scaleout.errors import ScaleoutError

API_PATH = "/api/v1"
LIST_LIMIT = 100  # records a list command shows unless told (the API's own default page)
MAX_LIST_LIMIT = 10_000  # the API's largest page


@dataclass(frozen=True)
class Endpoint:
    """An API address as APIClient takes it."""

    host: str
    port: int
    secure: bool


def parse_api_url(url: str) -> Endpoint:
    """``http[s]://host[:port][/api/v1]`` → host, port, scheme; the port defaults to the scheme's."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(
            f"{url!r} is not an http(s) URL like {DEFAULT_API_URL}", param_hint="--api-url"
        )
    if parts.path.rstrip("/") not in ("", API_PATH):
        raise click.BadParameter(
            f"{url!r} has the path {parts.path!r}; give the API's root, e.g. {DEFAULT_API_URL}",
            param_hint="--api-url",
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise click.BadParameter(f"{url!r}: {error}", param_hint="--api-url") from None
    return Endpoint(parts.hostname, port, parts.scheme == "https")


@dataclass(frozen=True)
class Remote:
    """The API a command talks to, and how it prints what it got."""

    url: str
    token: str | None = None
    as_json: bool = False
    tls_ca: Path | None = None  # an https API is verified against it (None: the system's roots)

    def client(self, timeout: float = 60.0) -> APIClient:
        endpoint = parse_api_url(self.url)
        verify = str(self.tls_ca) if self.tls_ca else True
        return APIClient(endpoint.host, endpoint.port, endpoint.secure, self.token, timeout, verify)

    @contextlib.contextmanager
    def connect(self, timeout: float = 60.0) -> Iterator[APIClient]:
        """An APIClient whose failures reach the user as one line (exit code 1)."""
        with self.errors(), self.client(timeout) as api:
            yield api

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except APIError as error:
            raise click.ClickException(str(error)) from None
        except httpx.TransportError as error:
            raise click.ClickException(self.unreachable(error)) from None
        except ScaleoutError as error:
            raise click.ClickException(str(error)) from None

    def unreachable(self, error: object) -> str:
        reason = str(error) or type(error).__name__
        return f"cannot reach the API at {self.url}: {reason}; is `scaleout api start` running?"

    def emit(self, data: Any, render: Callable[[], None]) -> None:
        """Print `data` as JSON with --json, else call `render` (tables)."""
        if self.as_json:
            click.echo(json.dumps(data, indent=2))
        else:
            render()


def api_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --api-url, --token and --json; the command receives them as one `remote: Remote`."""

    @functools.wraps(command)
    def wrapper(
        *args: Any, api_url: str, token: str | None, as_json: bool, tls_ca: Path | None, **kwargs: Any
    ) -> Any:
        parse_api_url(api_url)  # a bad URL is a usage error before anything runs
        return command(*args, remote=Remote(api_url.rstrip("/"), token or None, as_json, tls_ca), **kwargs)

    options = [
        click.option(
            "--api-url",
            envvar="SCALEOUT_API_URL",
            default=DEFAULT_API_URL,
            show_default=True,
            help="The API's URL (env SCALEOUT_API_URL).",
        ),
        click.option(
            "--token",
            envvar="SCALEOUT_API_TOKEN",
            default=None,
            help="The API token, if the API was started with one (env SCALEOUT_API_TOKEN).",
        ),
        click.option(
            "--json", "as_json", is_flag=True, help="Print the API's JSON answer instead of a table."
        ),
        ca_option,
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def paging_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --limit and --skip: a list command shows one page and says how to get the next one."""
    command = click.option(
        "--skip",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Records to skip before the page (the next page starts at --skip plus --limit).",
    )(command)
    return click.option(
        "--limit",
        type=click.IntRange(1, MAX_LIST_LIMIT),
        default=LIST_LIMIT,
        show_default=True,
        help="Records to show.",
    )(command)


def resolve_id(api: APIClient, family: str, given: str) -> str:
    """A full id from a short one as tables show it ("…1a2b3c4d" or "1a2b3c4d"): its unique suffix.

    Ids that are not a short hex tail pass through unchanged, so the API's 404 names them.
    """
    tail = given.removeprefix("…")
    if len(tail) >= 32 or not tail or any(c not in "0123456789abcdef" for c in tail):
        return given
    ids = [row["id"] for row in api.list_entities(family)["result"] if row["id"].endswith(tail)]
    if len(ids) > 1:
        raise click.ClickException(f"{given!r} matches {len(ids)} {family}; give more of the id")
    return ids[0] if ids else tail


def filter_id(api: APIClient, family: str, given: str | None) -> str | None:
    """The full id for a --FAMILY-id filter, which must name a record: a filter on an id that matches
    nothing would list nothing and look like an empty federation."""
    if given is None:
        return None
    resolved = resolve_id(api, family, given)
    if api.count_entities(family, id=resolved) == 0:
        noun = family.removesuffix("s")
        raise click.ClickException(f"no {noun} has the id {given!r}; `scaleout {noun} list` shows them")
    return resolved
