"""A real API server (uvicorn on a loopback port, in a thread) over SQLite and a file repository."""

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from scaleout import APIClient
from scaleout.api.app import create_app
from scaleout.api.settings import ApiSettings
from scaleout.store.repository import ModelRepository
from scaleout.store.statestore import Statestore
from scaleout.store.uri import open_model_repository, open_statestore

SHUTDOWN_TIMEOUT = 15.0


@dataclass
class ApiServer:
    port: int
    statestore: Statestore
    repository: ModelRepository
    models_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def client(self, token: str | None = None) -> APIClient:
        return APIClient("127.0.0.1", self.port, token=token)

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def run_api(
    root: Path,
    controller: Any | None = None,
    extend: Callable[[FastAPI], None] | None = None,
    **settings: Any,
) -> Iterator[ApiServer]:
    """Serve create_app(...) (with ``extend(app)`` applied, e.g. an extra route) until the block ends.

    The socket is bound and listening before the thread starts, so requests made at once wait in the
    backlog until uvicorn serves them: no polling for the server to come up.
    """
    root.mkdir(parents=True, exist_ok=True)
    statestore = open_statestore(f"sqlite:///{root / 'statestore.db'}")
    models_dir = root / "models"
    repository = open_model_repository(f"file://{models_dir}")
    app = create_app(ApiSettings(**settings), statestore, repository, controller)
    if extend is not None:
        extend(app)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield ApiServer(sock.getsockname()[1], statestore, repository, models_dir)
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT)
        sock.close()
        statestore.close()
        assert not thread.is_alive(), "the API server did not shut down"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    with run_api(tmp_path) as api_server:
        yield api_server


@pytest.fixture
def api(server: ApiServer) -> Iterator[APIClient]:
    with server.client() as client:
        yield client


@pytest.fixture
def http(server: ApiServer) -> Iterator[httpx.Client]:
    with server.http() as client:
        yield client
