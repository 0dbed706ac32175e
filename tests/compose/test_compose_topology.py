"""The compose topology as processes on loopback: each service started from docker-compose.yaml's own
`command` and `environment` (as `docker-compose config` resolves them), with only the compose network's
host names, ports and volumes rewritten to loopback, the test's MongoDB-compatible and S3 servers
standing in for the mongo and minio services. Two rounds prove the wiring (TLS on every hop, with the
certificates of the one-shot `certs` service), the remote package and that the two replicas of
`client`, with one environment, train on different data partitions.
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scaleout.store.uri import S3Credentials
from tests.compose.compose import (
    REPO,
    flag_value,
    image_examples_dir,
    loopback_mongo_uri,
    loopback_s3_uri,
    resolved_config,
    scaleout_services,
    with_flag,
)
from tests.e2e.federation import SCALEOUT, Federation, free_port, wait_until

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

ROUNDS = 2
START_TIMEOUT = 60.0


def _port(published: str) -> int:
    """The container port of a `docker-compose config` port entry ("127.0.0.1:8092:8092/tcp")."""
    return int(published.split("/")[0].rsplit(":", 1)[1])


def _healthcheck(service: dict[str, Any], replace: dict[str, str]) -> list[str]:
    """The service's healthcheck command, runnable here: our venv's python/scaleout, addresses rewritten."""
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD", test
    programs = {"python": sys.executable, "scaleout": SCALEOUT}
    command = [programs.get(test[1], test[1]), *test[2:]]
    for old, new in replace.items():
        command = [arg.replace(old, new) for arg in command]
    return command


def _healthy(command: list[str], env: dict[str, str]) -> bool:
    """The healthcheck passes, run with the service's environment (as inside its container)."""
    return subprocess.run(command, capture_output=True, timeout=30, env={**os.environ, **env}).returncode == 0


def test_the_compose_services_run_two_rounds_on_loopback(
    tmp_path: Path,
    mongo_uri: str,
    mongo_database: str,
    s3_endpoint: str,
    s3_credentials: S3Credentials,
    s3_bucket: str,
) -> None:
    config = resolved_config()
    services = scaleout_services(config)
    api, combiner, init, client, certs = (
        services[name] for name in ("api", "combiner", "init", "client", "certs")
    )
    mongo_env = config["services"]["mongo"]["environment"]
    minio_env = config["services"]["minio"]["environment"]

    api_port, combiner_port = free_port(), free_port()
    container_api_port = int(flag_value(api["command"], "--port"))
    assert _port(api["ports"][0]) == container_api_port  # the published port is the one it listens on
    api_url = f"https://127.0.0.1:{api_port}"  # TLS is on by default

    def environment(service: dict[str, Any], volumes: Path | None = None) -> dict[str, str]:
        """The service's compose environment with the compose network's addresses made loopback."""
        env = {key: str(value) for key, value in (service.get("environment") or {}).items()}
        if "SCALEOUT_DB" in env:
            # The api and combiner log in to mongo with the root user the mongo service creates.
            assert env["SCALEOUT_DB"].startswith(
                f"mongodb://{mongo_env['MONGO_INITDB_ROOT_USERNAME']}:"
                f"{mongo_env['MONGO_INITDB_ROOT_PASSWORD']}@mongo:27017/"
            )
            env["SCALEOUT_DB"] = loopback_mongo_uri(env["SCALEOUT_DB"], mongo_uri, mongo_database)
        if "SCALEOUT_MODELS" in env:
            env["SCALEOUT_MODELS"] = loopback_s3_uri(env["SCALEOUT_MODELS"], s3_endpoint, s3_bucket)
            # ... and sign S3 requests with minio's root credentials, which here are the test server's.
            assert (env["SCALEOUT_S3_ACCESS_KEY"], env["SCALEOUT_S3_SECRET_KEY"]) == (
                minio_env["MINIO_ROOT_USER"],
                minio_env["MINIO_ROOT_PASSWORD"],
            )
            env["SCALEOUT_S3_ACCESS_KEY"] = s3_credentials.access_key
            env["SCALEOUT_S3_SECRET_KEY"] = s3_credentials.secret_key
        if "SCALEOUT_API_URL" in env:
            # clients dial the api service; the api's own CLI (docker compose exec api) dials loopback
            assert env["SCALEOUT_API_URL"] in {
                f"https://api:{container_api_port}",
                f"https://127.0.0.1:{container_api_port}",
            }
            env["SCALEOUT_API_URL"] = api_url
        # A named volume is a folder every container of the service shares: here, one under tmp_path.
        for volume in service.get("volumes") or []:
            source, target = volume.split(":")[:2]
            for key, value in env.items():
                if value == target or value.startswith(target + "/"):
                    env[key] = str(tmp_path / "volumes" / source) + value[len(target) :]
        return env

    def only(env: dict[str, str]) -> dict[str, str]:
        """Exactly the service's environment: the test federation's own (the admin token and TLS files
        its APIClient uses) blanked where compose does not give them, as a container would not have them."""
        return {**dict.fromkeys(admin, ""), **env}

    def workdir(name: str) -> Path:
        """A container's own filesystem: its working directory, where `.scaleout/` goes."""
        path = tmp_path / name
        path.mkdir()
        return path

    # The test's own APIClient verifies the API against the CA the certs service makes, as init does.
    # ... and with the admin token, which only the api and init are given: the combiner holds the
    # controller's credential only, the clients none (they enroll with init's secret).
    admin = ("SCALEOUT_TLS_CERT", "SCALEOUT_TLS_CA", "SCALEOUT_API_TOKEN")
    api_tls = {key: environment(api)[key] for key in admin}
    assert environment(init)["SCALEOUT_API_TOKEN"] == api_tls["SCALEOUT_API_TOKEN"]
    assert "SCALEOUT_API_TOKEN" not in environment(combiner) and "SCALEOUT_API_TOKEN" not in environment(
        client
    )
    assert environment(combiner)["SCALEOUT_CONTROLLER_TOKEN"] == environment(api)["SCALEOUT_CONTROLLER_TOKEN"]
    assert (
        environment(client)["SCALEOUT_ENROLL_SECRET_FILE"] == environment(init)["SCALEOUT_ENROLL_SECRET_FILE"]
    )
    fed = Federation(tmp_path, db="", models="", env=api_tls, api_port=api_port)
    try:
        # certs: one shot, before the api and the combiner, into the volume they mount.
        process = fed._spawn("certs", certs["command"], only(environment(certs)), cwd=workdir("certs"))
        assert process.popen.wait(timeout=60) == 0, process.log()
        del fed.processes["certs"]
        assert Path(api_tls["SCALEOUT_TLS_CA"]).is_file()

        # api: listens where the test says, otherwise exactly the compose command.
        command = with_flag(with_flag(api["command"], "--host", "127.0.0.1"), "--port", str(api_port))
        process = fed._spawn("api", command, only(environment(api)), cwd=workdir("api"))
        api_check = _healthcheck(api, {f"127.0.0.1:{container_api_port}": f"127.0.0.1:{api_port}"})
        wait_until(
            lambda: fed._check_alive(process) or _healthy(api_check, environment(api)),
            START_TIMEOUT,
            "api healthy",
        )

        # combiner: clients dial the address it advertises, the service name `combiner` in compose.
        assert flag_value(combiner["command"], "--advertise-host") == "combiner"
        container_combiner_port = flag_value(combiner["command"], "--port")
        command = with_flag(combiner["command"], "--host", "127.0.0.1")
        command = with_flag(command, "--port", str(combiner_port))
        command = with_flag(command, "--advertise-host", "127.0.0.1")
        process = fed._spawn("combiner", command, only(environment(combiner)), cwd=workdir("combiner"))
        combiner_check = _healthcheck(combiner, {container_combiner_port: str(combiner_port)})
        wait_until(
            lambda: fed._check_alive(process) or _healthy(combiner_check, environment(combiner)),
            START_TIMEOUT,
            "combiner healthy",
        )
        assert [c["tls"] for c in fed.api.get_combiners()["result"]] == [True]

        # init: one shot, the example package from the repository where the image has it.
        command = [arg.replace(image_examples_dir(), str(REPO / "examples")) for arg in init["command"]]
        process = fed._spawn("init", command, only(environment(init)), cwd=workdir("init"))
        assert process.popen.wait(timeout=180) == 0, process.log()
        del fed.processes["init"]  # done, as `service_completed_successfully` requires; not a failure
        seed_id = fed.api.get_models()["result"][0]["id"]

        # client: two replicas, one command and one environment, each in its own container.
        for replica in (1, 2):
            name = f"client-{replica}"
            fed._spawn(name, client["command"], only(environment(client)), cwd=workdir(name))
        online = fed.wait_for_clients(client["deploy"]["replicas"])

        session_id = fed.api.start_session(rounds=ROUNDS, min_clients=len(online), round_timeout=60)
        session = fed.api.wait_for_session(session_id, 240)
        assert session["status"] == "Finished", session
        rounds = fed.api.get_rounds(session_id=session_id, sort_key="index")["result"]
        assert [r["status"] for r in rounds] == ["Finished"] * ROUNDS
        trail = fed.api.get_model_trail(rounds[-1]["model_id"])
        assert [m["id"] for m in trail] == [seed_id] + [r["model_id"] for r in rounds]

        # Each replica held its own partition: different training sets, so different num_examples
        # (the 1,797 digits split in two: 719 and 718 training examples) ...
        for round_ in rounds:
            counts = sorted(c["num_examples"] for c in round_["clients"])
            assert len(counts) == 2 and counts[0] != counts[1], round_["clients"]
        # ... read from different partition files, in the package each downloaded from the API.
        partitions = set()
        for replica in (1, 2):
            files = list((tmp_path / f"client-{replica}").rglob("data/clients/*/mnist.npz"))
            assert len(files) == 1, files
            assert "scaleout.yaml" in {p.name for p in files[0].parents[3].iterdir()}
            partitions.add(files[0].parent.name)
        assert partitions == {"1", "2"}
        # Each replica enrolled for a credential of its own, kept owner-only in its work dir, and acted
        # under the client id bound to it.
        tokens = fed.api.get_client_tokens()["result"]
        assert sorted(t["client_id"] for t in tokens) == sorted(c["client_id"] for c in rounds[0]["clients"])
        for replica in (1, 2):
            (credential,) = (tmp_path / f"client-{replica}").rglob("credential")
            assert credential.stat().st_mode & 0o077 == 0
    except BaseException:
        print(fed.logs(), file=sys.stderr)
        raise
    finally:
        fed.stop()
