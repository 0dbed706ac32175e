"""A real API server for the CLI tests: the one the API tests use (uvicorn on a loopback port over
SQLite and files), and the CLI run through click's runner or as the installed `scaleout` script."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from scaleout.cli.main import cli
from tests.api.conftest import ApiServer, run_api

SCALEOUT = str(Path(sys.executable).with_name("scaleout"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    with run_api(tmp_path / "api") as api_server:
        yield api_server


def api_url(server: ApiServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def invoke(server: ApiServer | None, *args: str, env: dict[str, str] | None = None) -> Result:
    """`scaleout ARGS` in-process, pointed at `server` through SCALEOUT_API_URL as a user would."""
    environment = {"SCALEOUT_API_URL": api_url(server)} if server else {}
    return CliRunner().invoke(cli, list(args), env={**environment, **(env or {})})


def ok(server: ApiServer | None, *args: str, env: dict[str, str] | None = None) -> Result:
    result = invoke(server, *args, env=env)
    assert result.exit_code == 0, result.output
    return result


def fails(server: ApiServer | None, *args: str, env: dict[str, str] | None = None) -> str:
    """A command that must fail as a user error: exit code 1, one message, no traceback."""
    result = invoke(server, *args, env=env)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), f"an error escaped: {result.exception!r}"
    assert "Traceback" not in result.output
    return result.output


def as_json(server: ApiServer, *args: str) -> Any:
    return json.loads(ok(server, *args, "--json").stdout)


def run_script(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """The installed `scaleout` script as a real process, its stdout and stderr captured apart."""
    return subprocess.run(
        [SCALEOUT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
