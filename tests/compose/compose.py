"""The compose file as docker-compose resolves it (tests/topology.py runs its services on loopback).

The tests read what `docker-compose config` prints (variables interpolated from .env.example, anchors
and merge keys resolved), so they check what compose would run, not our reading of the YAML.
"""

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
IMAGE = "scaleout-edge:local"


def docker_compose() -> str:
    """Debian's docker-compose 1.29 (installed by `make test`); its absence fails the test."""
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail(
            "docker-compose is not installed: `make test` installs it (apt-get install -y docker-compose)",
            pytrace=False,
        )
    return path


def env_example() -> dict[str, str]:
    """The variables .env.example defines (KEY=value lines)."""
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def run_compose(
    *args: str, env_file: Path = ENV_EXAMPLE, project_dir: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """docker-compose ARGS on our compose file, its variables from env_file alone."""
    # The shell's values would override the env file's: leave them out so the file alone decides.
    env = {k: v for k, v in os.environ.items() if k not in env_example()}
    project = ["--project-directory", str(project_dir), "-f", str(COMPOSE_FILE), "--env-file", str(env_file)]
    return subprocess.run(
        [docker_compose(), *project, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def resolved_config() -> dict[str, Any]:
    """`docker-compose --env-file .env.example config`, parsed."""
    result = run_compose("config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def scaleout_services(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run our image: their command is a `scaleout` command line."""
    return {name: s for name, s in config["services"].items() if s.get("image") == IMAGE}


def image_examples_dir() -> str:
    """Where the Dockerfile copies examples/ in the image (the init service's package lives there)."""
    match = re.search(r"^COPY\b.*\sexamples\s+(\S+)\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "the Dockerfile copies no examples/ folder"
    return match.group(1).rstrip("/")
