"""docker-compose.yaml without a Docker engine: it validates, its commands exist, its variables are read.

Only a Docker host can check the rest: that the images build and pull, that the healthchecks pass
inside their containers (mongosh, `mc ready local`) and that the replicas share the partition volume.
"""

import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import click

from scaleout.cli.main import cli
from scaleout.store.uri import S3Credentials
from tests.compose.compose import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    env_example,
    resolved_config,
    run_compose,
    scaleout_services,
)
from tests.e2e.federation import SCALEOUT
from tests.topology import flag_value

SERVICES = {"mongo", "minio", "certs", "api", "combiner", "init", "client"}
CERTS = "/var/lib/scaleout/certs"  # where the certs volume is mounted


def test_the_compose_file_validates_with_the_example_env_file() -> None:
    result = run_compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_the_credentials(tmp_path: Path) -> None:
    empty = tmp_path / ".env"
    empty.write_text("")
    result = run_compose("config", "-q", env_file=empty, project_dir=tmp_path)
    assert result.returncode != 0
    assert "set it in .env (cp .env.example .env)" in result.stderr


def test_the_compose_file_starts_the_issue_topology() -> None:
    config = resolved_config()
    services = config["services"]
    assert set(services) == SERVICES
    assert set(scaleout_services(config)) == {"certs", "api", "combiner", "init", "client"}
    assert services["client"]["deploy"]["replicas"] == 2
    assert services["init"]["restart"] == "no"
    assert services["certs"]["restart"] == "no"
    assert services["client"]["depends_on"] == {
        "init": {"condition": "service_completed_successfully"},
        "combiner": {"condition": "service_healthy"},
    }
    for name in ("api", "combiner"):
        assert {s: d["condition"] for s, d in services[name]["depends_on"].items()} == {
            "certs": "service_completed_successfully",
            "mongo": "service_healthy",
            "minio": "service_healthy",
        }
    assert services["init"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert all("healthcheck" in services[name] for name in ("mongo", "minio", "api", "combiner"))


def test_only_the_api_is_published_and_on_loopback_by_default() -> None:
    published = {name: s["ports"] for name, s in resolved_config()["services"].items() if s.get("ports")}
    assert published == {"api": ["127.0.0.1:8092:8092/tcp"]}


def test_tls_is_on_by_default_with_the_certificates_of_the_certs_service() -> None:
    services = resolved_config()["services"]
    certs = services["certs"]
    assert certs["command"][:2] == ["certs", "create"] and "--keep-existing" in certs["command"]
    assert certs["environment"]["SCALEOUT_CERTS_DIR"] == CERTS
    assert certs["volumes"] == [f"certs:{CERTS}:rw"]
    # The server certificate names every host a client dials: the API's and the combiner's.
    hosts = {certs["command"][i + 1] for i, arg in enumerate(certs["command"]) if arg == "--host"}
    api_host = urlsplit(services["client"]["environment"]["SCALEOUT_API_URL"]).hostname
    assert {api_host, flag_value(services["combiner"]["command"], "--advertise-host")} <= hosts
    for name in ("api", "combiner"):  # they serve TLS with the server certificate
        env = services[name]["environment"]
        assert (env["SCALEOUT_TLS_CERT"], env["SCALEOUT_TLS_KEY"]) == (
            f"{CERTS}/server.pem",
            f"{CERTS}/server-key.pem",
        )
    for name in ("api", "combiner", "init", "client"):  # they verify against the CA, mounted read-only
        assert services[name]["environment"]["SCALEOUT_TLS_CA"] == f"{CERTS}/ca.pem"
        assert f"certs:{CERTS}:ro" in services[name]["volumes"]
    for name in ("init", "client"):
        assert services[name]["environment"]["SCALEOUT_API_URL"].startswith("https://")
    assert "https://127.0.0.1:8092/" in services["api"]["healthcheck"]["test"][-1]
    assert "--tls" in services["combiner"]["healthcheck"]["test"]


def test_the_clients_download_the_package_from_the_api() -> None:
    client = resolved_config()["services"]["client"]
    assert "--local-package" not in client["command"]
    assert "SCALEOUT_LOCAL_PACKAGE" not in client["environment"]


def test_every_service_command_is_a_real_scaleout_command() -> None:
    commands = []
    for name, service in scaleout_services(resolved_config()).items():
        commands.append((name, service["command"]))
        test = service.get("healthcheck", {}).get("test", [])
        if test[:2] == ["CMD", "scaleout"]:
            commands.append((f"{name} healthcheck", test[2:]))
    assert {what for what, _ in commands} >= {
        "certs",
        "api",
        "combiner",
        "init",
        "client",
        "combiner healthcheck",
    }
    for what, command in commands:
        # click rejects an unknown subcommand or option even when --help follows it.
        result = subprocess.run([SCALEOUT, *command, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{what}: scaleout {' '.join(command)} --help\n{result.stderr}"
        assert "Usage: scaleout" in result.stdout


def _click_envvars(command: click.Command) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar:
            names.update([param.envvar] if isinstance(param.envvar, str) else param.envvar)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            names |= _click_envvars(sub)
    return names


class _Recording(dict):
    """An environment that has every variable (value "x") and remembers which ones were read."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key, default=None):  # type: ignore[override]
        self.asked.add(key)
        return "x"

    def __getitem__(self, key):  # type: ignore[override]
        self.asked.add(key)
        return "x"


def _variables_the_code_reads() -> set[str]:
    recording = _Recording()
    S3Credentials.from_env(recording)  # the S3 keys are read from the environment, not by click
    return _click_envvars(cli) | recording.asked


def test_the_scaleout_variables_compose_sets_are_ones_the_code_reads() -> None:
    known = _variables_the_code_reads()
    assert {"SCALEOUT_S3_ACCESS_KEY", "SCALEOUT_DB", "SCALEOUT_API_URL"} <= known  # the walk found them
    for name, service in scaleout_services(resolved_config()).items():
        keys = set(service.get("environment") or {})
        assert keys <= known, f"{name} sets variables no scaleout code reads: {sorted(keys - known)}"


def test_every_env_example_variable_is_used_by_the_compose_file_and_vice_versa() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    defined = set(env_example())
    assert defined - used == set(), f"{ENV_EXAMPLE.name} defines variables compose never uses"
    assert used - defined == set(), f"compose uses variables {ENV_EXAMPLE.name} does not document"
