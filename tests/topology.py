"""A deployment topology (docker-compose.yaml, a Kubernetes overlay) run as processes on loopback.

Each service starts from its own command line and environment, with only the network's host names,
ports and volumes rewritten: the test's MongoDB-compatible and S3 servers stand in for the mongo and
minio services, and a test federation (tests/e2e/federation.py) runs and logs the processes. The
topology tests read their services and probes; this module is what they share: the rewrites to
loopback, starting a service with exactly its environment and waiting for its probe, one-shot jobs,
and the rounds that prove the wiring.
"""

import os
import subprocess
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from scaleout.store.uri import S3Credentials
from tests.e2e.federation import Federation, Process, free_port, wait_until

START_TIMEOUT = 60.0


def flag_value(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


def with_flag(command: list[str], flag: str, value: str) -> list[str]:
    """command with flag's value replaced (the flag must be there: a missing one is a wiring change)."""
    assert flag in command, f"{flag} missing from {command}"
    index = command.index(flag) + 1
    return [*command[:index], value, *command[index + 1 :]]


def loopback_mongo_uri(topology_uri: str, test_uri: str, database: str) -> str:
    """The topology's statestore URI pointed at the test server: its host:port and a fresh database.

    The test server has no users (it refuses createUser), so the credentials and authSource go; the
    database name is the test's so that runs never share state. Everything else in the query stays.
    """
    parts = urlsplit(topology_uri)
    assert parts.scheme == "mongodb" and parts.hostname == "mongo", topology_uri
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "authSource"]
    netloc = urlsplit(test_uri).netloc.rsplit("@", 1)[-1]
    return urlunsplit(("mongodb", netloc, f"/{database}", urlencode(query), ""))


def loopback_s3_uri(topology_uri: str, endpoint: str, bucket: str) -> str:
    """The topology's model-repository URI pointed at the test S3 server and a bucket of the test's own."""
    parts = urlsplit(topology_uri)
    query = dict(parse_qsl(parts.query))
    assert parts.scheme == "s3" and query.get("endpoint") == "minio:9000", topology_uri
    query["endpoint"] = endpoint
    return urlunsplit(("s3", bucket, "", urlencode(query), ""))


@dataclass(frozen=True)
class Loopback:
    """Where a topology's stores and API are here: the test's servers, and a free port for the API."""

    mongo_uri: str
    mongo_database: str
    s3_endpoint: str
    s3_credentials: S3Credentials
    s3_bucket: str
    api_port: int = field(default_factory=free_port)

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"  # both topologies serve TLS

    def environment(self, env: Mapping[str, str], api_urls: Collection[str]) -> dict[str, str]:
        """env with its statestore, model repository (and the S3 keys) and API URL pointed here; the API
        URL it had must be one of ``api_urls`` (the API's name on the topology's network, or loopback
        for the API's own CLI)."""
        env = dict(env)
        if "SCALEOUT_DB" in env:
            env["SCALEOUT_DB"] = loopback_mongo_uri(env["SCALEOUT_DB"], self.mongo_uri, self.mongo_database)
        if "SCALEOUT_MODELS" in env:
            env["SCALEOUT_MODELS"] = loopback_s3_uri(env["SCALEOUT_MODELS"], self.s3_endpoint, self.s3_bucket)
            env["SCALEOUT_S3_ACCESS_KEY"] = self.s3_credentials.access_key
            env["SCALEOUT_S3_SECRET_KEY"] = self.s3_credentials.secret_key
        if "SCALEOUT_API_URL" in env:
            assert env["SCALEOUT_API_URL"] in api_urls, env["SCALEOUT_API_URL"]
            env["SCALEOUT_API_URL"] = self.api_url
        return env


@pytest.fixture
def loopback(
    mongo_uri: str, mongo_database: str, s3_endpoint: str, s3_credentials: S3Credentials, s3_bucket: str
) -> Loopback:
    return Loopback(mongo_uri, mongo_database, s3_endpoint, s3_credentials, s3_bucket)


class Topology:
    """The test federation whose processes are a topology's services, each with exactly its own
    environment: the operator's variables (the admin token and TLS files the test's APIClient uses) are
    blanked for them, as a container would not have them. A context manager: on leaving, the processes
    stop, and after a failure their logs are printed."""

    def __init__(self, root: Path, loopback: Loopback, operator: Mapping[str, str]) -> None:
        self.fed = Federation(root, db="", models="", env=dict(operator), api_port=loopback.api_port)
        self.pods = root / "pods"
        self._blank = dict.fromkeys(operator, "")

    def __enter__(self) -> "Topology":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if error is not None:
            print(self.fed.logs(), file=sys.stderr)
        self.fed.stop()

    def workdir(self, name: str) -> Path:
        """A new folder for one container: its working directory and its emptyDir volumes."""
        path = self.pods / name
        path.mkdir(parents=True)
        return path

    def start(
        self,
        name: str,
        args: list[str],
        env: Mapping[str, str],
        cwd: Path | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> Process:
        """Start a service in cwd (default: a new workdir); with ``ready`` (its probe or healthcheck),
        wait until it passes, failing as soon as the process exits."""
        process = self.fed._spawn(name, args, {**self._blank, **env}, cwd=cwd or self.workdir(name))
        if ready is not None:
            wait_until(lambda: self.fed._check_alive(process) or ready(), START_TIMEOUT, f"{name} ready")
        return process

    def run_to_completion(
        self, name: str, args: list[str], env: Mapping[str, str], timeout: float, cwd: Path | None = None
    ) -> None:
        """A one-shot service (a Job, compose's `service_completed_successfully`): it must exit 0."""
        process = self.start(name, args, env, cwd)
        assert process.popen.wait(timeout=timeout) == 0, process.log()
        del self.fed.processes[name]  # done: not a process that died

    def passes(self, command: list[str], env: Mapping[str, str]) -> bool:
        """A probe command exits 0, run with the service's environment (as inside its container)."""
        full_env = {**os.environ, **self._blank, **env}
        return subprocess.run(command, capture_output=True, timeout=30, env=full_env).returncode == 0

    def run_rounds(self, rounds: int, clients: int) -> list[dict[str, Any]]:
        """The session that proves the wiring: ``rounds`` rounds of the ``clients`` connected ones, from
        the seed model, each finished, their models a trail; each client trained under a credential of
        its own (it enrolled for it). The rounds, in order."""
        (seed,) = self.fed.api.get_models()["result"]
        online = self.fed.wait_for_clients(clients)
        session_id = self.fed.api.start_session(rounds=rounds, min_clients=len(online), round_timeout=60)
        session = self.fed.api.wait_for_session(session_id, 240)
        assert session["status"] == "Finished", session
        done = self.fed.api.get_rounds(session_id=session_id, sort_key="index")["result"]
        assert [r["status"] for r in done] == ["Finished"] * rounds
        trail = self.fed.api.get_model_trail(done[-1]["model_id"])
        assert [m["id"] for m in trail] == [seed["id"]] + [r["model_id"] for r in done]
        tokens = self.fed.api.get_client_tokens()["result"]
        assert sorted(t["client_id"] for t in tokens) == sorted(c["client_id"] for c in done[0]["clients"])
        return done
