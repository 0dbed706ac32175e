"""APIClient: the Python way to drive a federation through its REST API.

Methods answer plain dicts and lists, exactly as the REST API does; errors raise APIError carrying
the server's message, which names what was wrong and the fix.
"""

import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from scaleout.compute_package import create_package
from scaleout.errors import ScaleoutError
from scaleout.tls import HTTPSTransport

CHUNK_SIZE = 4 * 1024 * 1024
ENDED = frozenset({"Finished", "Failed", "Terminated"})
LONG_POLL = 30.0  # seconds one /wait request may hang; the server caps it at 60
MIN_POLL_INTERVAL = 0.5  # between polls that returned early (e.g. a session not started yet)
PAGE_SIZE = 1000  # records per request when a list method is asked for every match


class APIError(ScaleoutError):
    """The API answered with an error status; `message` is its detail."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.message = message


class NotTheAPI(APIError):
    """Something other than a scaleout-edge API answered (a web page, a proxy): the message names it."""

    def __init__(self, response: httpx.Response) -> None:
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        title = re.search(r"<title>\s*(.*?)\s*</title>", response.text[:4096], re.IGNORECASE | re.DOTALL)
        server = response.headers.get("server")
        message = (
            f"{response.request.url.copy_with(query=None)} answered HTTP {response.status_code} with {kind}"
            + (f" ({title.group(1)[:80]})" if title else "")
            + (f" from {server}" if server else "")
            + ", not the JSON of a scaleout-edge API: is the API URL right?"
        )
        ScaleoutError.__init__(self, message)
        self.status_code = response.status_code
        self.message = message


class SessionTimeout(ScaleoutError, TimeoutError):
    """wait_for_session's bound passed before the session ended."""


def _detail(response: httpx.Response) -> str:
    """The server's message: FastAPI's `detail` (a string, or a list of field errors) or the raw text."""
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    detail = body.get("detail", body.get("message", body)) if isinstance(body, dict) else body
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg')}"
            if isinstance(item, dict)
            else str(item)
            for item in detail
        )
    return str(detail)


def _transport(verify: bool | str) -> httpx.HTTPTransport:
    if verify is False:
        return httpx.HTTPTransport(verify=False)
    return HTTPSTransport(None if verify is True else Path(verify))


class APIClient:
    """A client of one scaleout-edge API (``APIClient("localhost", 8092)``); use as a context manager."""

    def __init__(
        self,
        host: str,
        port: int,
        secure: bool = False,
        token: str | None = None,
        timeout: float = 60.0,
        verify: bool | str = True,
    ) -> None:
        """``verify``: True checks an https API against the system's trusted CAs, a path against that
        CA bundle (PEM); False checks nothing (never outside tests). A certificate that does not
        verify raises TLSError naming the CA."""
        scheme = "https" if secure else "http"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = f"{scheme}://{host}:{port}/api/v1"
        self._long_poll = min(LONG_POLL, timeout * 0.8)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            transport=_transport(verify),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "APIClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- plumbing
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer of a JSON route; APIError for an error status, NotTheAPI when it is not JSON."""
        response = self._http.request(method, path, **kwargs)
        kind = response.headers.get("content-type", "")
        if not kind.startswith("application/json") and (response.status_code < 400 or "html" in kind):
            raise NotTheAPI(response)
        if response.status_code >= 400:
            raise APIError(response.status_code, _detail(response))
        return response

    def _get(self, path: str, **params: Any) -> Any:
        query = {key: value for key, value in params.items() if value is not None}
        return self._request("GET", path, params=query).json()

    def _upload(self, path: str, file_path: Path, fields: dict[str, str]) -> dict[str, Any]:
        # httpx streams an open file in the multipart body; the file is never read whole.
        with open(file_path, "rb") as handle:
            files = {"file": (file_path.name, handle, "application/octet-stream")}
            return self._request("POST", path, files=files, data=fields).json()

    def _download(self, path: str, target: str | os.PathLike[str]) -> Path:
        """Stream a download to a temp file beside `target`, then rename: never a partial file."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._http.stream("GET", path) as response:
            if response.status_code >= 400:
                response.read()
                raise APIError(response.status_code, _detail(response))
            fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in response.iter_bytes(CHUNK_SIZE):
                        out.write(chunk)
                os.replace(temp_name, target)
            except BaseException:
                Path(temp_name).unlink(missing_ok=True)
                raise
        return target

    def list_entities(self, family: str, **params: Any) -> dict[str, Any]:
        """``GET /{family}/`` with filters and paging (limit, skip, sort_key, sort_order).

        With a ``limit``, that one page (``count`` is the total); without one, every match from
        ``skip`` on, read a page of ``PAGE_SIZE`` at a time (the API answers one page by default).
        """
        return self._list(f"/{family}/", params)

    def _list(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """One page of a list route when ``limit`` is given, else every match from ``skip`` on."""
        if params.get("limit") is not None:
            return self._get(path, **params)
        skip = params.get("skip") or 0
        query = {key: value for key, value in params.items() if key not in ("limit", "skip")}
        page = self._get(path, **query, limit=PAGE_SIZE, skip=skip)
        items = page["result"]
        while page["result"] and skip + len(items) < page["count"]:
            page = self._get(path, **query, limit=PAGE_SIZE, skip=skip + len(items))
            items.extend(page["result"])
        return {"count": page["count"], "result": items}

    def count_entities(self, family: str, **filters: Any) -> int:
        return self._get(f"/{family}/count", **filters)["count"]

    # ----- health
    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "statestore": "ok"}`` when the API and its statestore answer."""
        return self._get("/health")

    # ----- compute packages
    def set_active_package(
        self,
        path: str | os.PathLike[str],
        helper: str = "numpyhelper",
        name: str | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        """Upload a package (a .tgz, or a folder packed here first) and make it active; returns it."""
        path = Path(path)
        if path.is_dir():
            with tempfile.TemporaryDirectory(prefix="scaleout-package-") as work:
                tarball = create_package(path, name=f"{path.resolve().name}.tgz", output_dir=work)
                return self._upload_package(tarball, helper, name, description)
        return self._upload_package(path, helper, name, description)

    def _upload_package(
        self, tarball: Path, helper: str, name: str | None, description: str
    ) -> dict[str, Any]:
        fields = {"helper": helper, "name": name or tarball.name, "description": description}
        return self._upload("/packages/", tarball, fields)

    def get_active_package(self) -> dict[str, Any]:
        return self._get("/packages/active")

    def get_package_checksum(self) -> dict[str, str]:
        """``{"checksum": sha256 hex}`` of the active package."""
        return self._get("/packages/checksum")

    def download_package(self, path: str | os.PathLike[str]) -> Path:
        """Stream the active package's tarball to `path`."""
        return self._download("/packages/download", path)

    def get_packages(self, **params: Any) -> dict[str, Any]:
        return self.list_entities("packages", **params)

    # ----- models
    def set_active_model(self, path: str | os.PathLike[str], name: str | None = None) -> str:
        """Upload a seed model (checked loadable by the active helper) and return its id."""
        path = Path(path)
        return self._upload("/models/", path, {"name": name or path.name})["id"]

    def get_model(self, id: str) -> dict[str, Any]:
        return self._get(f"/models/{id}")

    def get_models(self, session_id: str | None = None, **params: Any) -> dict[str, Any]:
        return self.list_entities("models", session_id=session_id, **params)

    def get_model_trail(self, id: str) -> list[dict[str, Any]]:
        """The model trail ending at this model: the seed first, this model last."""
        ancestors = self._list(f"/models/{id}/ancestors", {})["result"]
        return [*reversed(ancestors), self.get_model(id)]

    def get_model_descendants(self, id: str) -> list[dict[str, Any]]:
        """Every model derived from this one, oldest first (read a page at a time)."""
        return self._list(f"/models/{id}/descendants", {})["result"]

    def download_model(self, id: str, path: str | os.PathLike[str]) -> Path:
        """Stream a model's bytes to `path` (written atomically) and return it."""
        return self._download(f"/models/{id}/download", path)

    # ----- sessions
    def start_session(
        self,
        name: str | None = None,
        rounds: int = 5,
        round_timeout: float = 180,
        min_clients: int = 1,
        requested_clients: int | None = None,
        aggregator: str = "fedavg",
        aggregator_kwargs: dict[str, float] | None = None,
        validate: bool = True,
        helper: str = "numpyhelper",
        model_id: str | None = None,
        buffer_size: int | None = None,
        mode: str = "sync",
        max_concurrency: int | None = None,
        staleness: str | None = None,
        staleness_exponent: float | None = None,
        max_staleness: int | None = None,
        max_versions: int | None = None,
        max_duration: float | None = None,
        server_lr: float | None = None,
        validate_every: int | None = None,
        **config: Any,
    ) -> str:
        """Create and start a session (from `model_id`, else the latest model); returns its id.

        `aggregator` is one of scaleout.round_rules.AGGREGATORS and `aggregator_kwargs` its numeric kwargs
        (e.g. aggregator="fedadam", aggregator_kwargs={"server_lr": 0.01}; the README's strategies table);
        an unknown name or a value out of range is an APIError 422 naming the field and the range.

        mode="async" runs FedBuff (README "Asynchronous sessions"): up to `max_concurrency` clients train
        on the latest version all the time, every `buffer_size` updates make a new version, each update
        weighted by `staleness` ("constant" or "polynomial" with `staleness_exponent`) and refused when
        staler than `max_staleness`; the session ends after `max_versions` versions or `max_duration`
        seconds (one of them is required), validating every `validate_every` versions. Those left None
        take the server's defaults. Extra keyword arguments are further SessionConfig fields
        (client_settings, round_retries).
        """
        asynchronous = {
            "max_concurrency": max_concurrency,
            "staleness": staleness,
            "staleness_exponent": staleness_exponent,
            "max_staleness": max_staleness,
            "max_versions": max_versions,
            "max_duration": max_duration,
            "server_lr": server_lr,
            "validate_every": validate_every,
        }
        body = {
            "name": name or "",
            "model_id": model_id,
            "config": {
                "rounds": rounds,
                "round_timeout": round_timeout,
                "min_clients": min_clients,
                "requested_clients": requested_clients,
                "aggregator": aggregator,
                "aggregator_kwargs": aggregator_kwargs or {},
                "validate": validate,
                "helper": helper,
                "buffer_size": buffer_size,
                "mode": mode,
                **{key: value for key, value in asynchronous.items() if value is not None},
                **config,
            },
        }
        return self._request("POST", "/sessions/start", json=body).json()["id"]

    def get_session(self, id: str) -> dict[str, Any]:
        return self._get(f"/sessions/{id}")

    def get_sessions(self, **params: Any) -> dict[str, Any]:
        return self.list_entities("sessions", **params)

    def get_session_status(self, id: str) -> str:
        return self.get_session(id)["status"]

    def get_session_progress(self, id: str) -> dict[str, Any] | None:
        """The running round's live progress, or None when no round of this session runs."""
        return self._get(f"/sessions/{id}/progress")["progress"]

    def get_session_stats(self, id: str, window: int | None = None) -> dict[str, Any]:
        """The session's pace and staleness from its records: versions (rounds) committed, versions per
        second over the session and its last `window` versions, the staleness histogram, rejections by
        reason and each version's updates and staleness (``GET /sessions/{id}/stats``)."""
        return self._get(f"/sessions/{id}/stats", window=window)

    def stop_session(self, id: str) -> dict[str, Any]:
        return self._request("POST", f"/sessions/{id}/stop").json()

    def wait_for_session(self, id: str, timeout: float = 600.0) -> dict[str, Any]:
        """Long-poll until the session is Finished, Failed or Terminated; return it.

        Raises SessionTimeout naming the status if it has not ended after `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            started = time.monotonic()
            remaining = deadline - started
            wait = max(0.001, min(self._long_poll, remaining))
            session = self._get(f"/sessions/{id}/wait", timeout=round(wait, 3))
            if session["status"] in ENDED:
                return session
            now = time.monotonic()
            if now >= deadline:
                raise SessionTimeout(
                    f"session {id} is still {session['status']} after {timeout:g} s "
                    f"(rounds done: {session.get('rounds_done')}); wait longer or stop it with stop_session"
                )
            # The server answers at once for a session it does not run; do not spin.
            time.sleep(min(max(0.0, MIN_POLL_INTERVAL - (now - started)), deadline - now))

    # ----- rounds, validations, clients, combiners, events
    def get_rounds(self, session_id: str | None = None, **params: Any) -> dict[str, Any]:
        return self.list_entities("rounds", session_id=session_id, **params)

    def get_validations(
        self, session_id: str | None = None, model_id: str | None = None, **params: Any
    ) -> dict[str, Any]:
        return self.list_entities("validations", session_id=session_id, model_id=model_id, **params)

    def get_clients(self, **params: Any) -> dict[str, Any]:
        return self.list_entities("clients", **params)

    def get_combiners(self, **params: Any) -> dict[str, Any]:
        return self.list_entities("combiners", **params)

    def get_events(self, **params: Any) -> dict[str, Any]:
        return self.list_entities("events", **params)

    def add_client(
        self, client_id: str, name: str = "", package: str = "remote"
    ) -> tuple[int, dict[str, Any]]:
        """Ask for a combiner; (200, assignment) or (203, {"message"}) while no package is active."""
        body = {"client_id": client_id, "name": name, "package": package}
        response = self._request("POST", "/clients/add", json=body)
        return response.status_code, response.json()

    # ----- credentials (admin)
    def create_client_token(self, name: str, client_id: str | None = None) -> dict[str, Any]:
        """Issue a client credential; the answer's ``token`` is shown only this once."""
        body = {"name": name, **({"client_id": client_id} if client_id else {})}
        return self._request("POST", "/clients/tokens", json=body).json()

    def get_client_tokens(self, **paging: Any) -> dict[str, Any]:
        """Client credentials (never their secrets): ``{"count", "result"}``; every one unless a
        ``limit`` (and ``skip``) asks for a page."""
        return self._list("/clients/tokens", paging)

    def revoke_client_token(self, id: str) -> dict[str, Any]:
        """Revoke a client credential; its client is disconnected within seconds."""
        return self._request("DELETE", f"/clients/tokens/{id}").json()

    def create_enrollment(self, name: str = "", uses: int = 1, expires_in: float = 86400.0) -> dict[str, Any]:
        """Issue an enrollment secret for ``uses`` clients, valid ``expires_in`` seconds (``secret`` once)."""
        body = {"name": name, "uses": uses, "expires_in": expires_in}
        return self._request("POST", "/clients/enrollments", json=body).json()

    def get_enrollments(self, **paging: Any) -> dict[str, Any]:
        """Enrollment secrets (never the secrets), every one unless a ``limit`` asks for a page."""
        return self._list("/clients/enrollments", paging)

    def revoke_enrollment(self, id: str) -> dict[str, Any]:
        return self._request("DELETE", f"/clients/enrollments/{id}").json()

    def enroll(self, secret: str, name: str = "") -> dict[str, Any]:
        """Exchange an enrollment secret for a client credential of one's own (needs no token)."""
        return self._request("POST", "/clients/enroll", json={"secret": secret, "name": name}).json()

    def whoami(self) -> dict[str, Any]:
        """The caller's role and, for a client credential, its client id."""
        return self._get("/clients/me")


__all__ = ["APIClient", "APIError", "SessionTimeout"]
