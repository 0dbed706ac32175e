"""The compose topology as processes on loopback: each service started from docker-compose.yaml's own
`command` and `environment` (as `docker-compose config` resolves them), with only the compose network's
host names, ports and volumes rewritten to loopback, the test's MongoDB-compatible and S3 servers
standing in for the mongo and minio services. Two rounds prove the wiring (TLS on every hop, with the
certificates of the one-shot `certs` service), the remote package and that the two replicas of
`client`, with one environment, train on different data partitions.
"""

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.compose.compose import REPO, image_examples_dir, resolved_config, scaleout_services
from tests.e2e.federation import SCALEOUT, free_port
from tests.topology import Loopback, Topology, flag_value, with_flag

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

ROUNDS = 2


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


def test_the_compose_services_run_two_rounds_on_loopback(tmp_path: Path, loopback: Loopback) -> None:
    config = resolved_config()
    services = scaleout_services(config)
    api, combiner, init, client, certs = (
        services[name] for name in ("api", "combiner", "init", "client", "certs")
    )
    mongo_env = config["services"]["mongo"]["environment"]
    minio_env = config["services"]["minio"]["environment"]

    container_api_port = int(flag_value(api["command"], "--port"))
    assert _port(api["ports"][0]) == container_api_port  # the published port is the one it listens on
    # clients dial the api service; the api's own CLI (docker compose exec api) dials loopback
    api_urls = {f"https://api:{container_api_port}", f"https://127.0.0.1:{container_api_port}"}

    def environment(service: dict[str, Any]) -> dict[str, str]:
        """The service's compose environment with the compose network's addresses made loopback."""
        env = {key: str(value) for key, value in (service.get("environment") or {}).items()}
        if "SCALEOUT_DB" in env:
            # The api and combiner log in to mongo with the root user the mongo service creates.
            assert env["SCALEOUT_DB"].startswith(
                f"mongodb://{mongo_env['MONGO_INITDB_ROOT_USERNAME']}:"
                f"{mongo_env['MONGO_INITDB_ROOT_PASSWORD']}@mongo:27017/"
            )
        if "SCALEOUT_MODELS" in env:
            # ... and sign S3 requests with minio's root credentials, which here are the test server's.
            assert (env["SCALEOUT_S3_ACCESS_KEY"], env["SCALEOUT_S3_SECRET_KEY"]) == (
                minio_env["MINIO_ROOT_USER"],
                minio_env["MINIO_ROOT_PASSWORD"],
            )
        env = loopback.environment(env, api_urls)
        # A named volume is a folder every container of the service shares: here, one under tmp_path.
        for volume in service.get("volumes") or []:
            source, target = volume.split(":")[:2]
            for key, value in env.items():
                if value == target or value.startswith(target + "/"):
                    env[key] = str(tmp_path / "volumes" / source) + value[len(target) :]
        return env

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
    with Topology(tmp_path, loopback, api_tls) as topology:
        # certs: one shot, before the api and the combiner, into the volume they mount.
        topology.run_to_completion("certs", certs["command"], environment(certs), timeout=60)
        assert Path(api_tls["SCALEOUT_TLS_CA"]).is_file()

        # api: listens where the test says, otherwise exactly the compose command.
        command = with_flag(
            with_flag(api["command"], "--host", "127.0.0.1"), "--port", str(loopback.api_port)
        )
        api_check = _healthcheck(api, {f"127.0.0.1:{container_api_port}": f"127.0.0.1:{loopback.api_port}"})
        topology.start(
            "api", command, environment(api), ready=lambda: topology.passes(api_check, environment(api))
        )

        # combiner: clients dial the address it advertises, the service name `combiner` in compose.
        assert flag_value(combiner["command"], "--advertise-host") == "combiner"
        container_combiner_port = flag_value(combiner["command"], "--port")
        combiner_port = free_port()
        command = with_flag(combiner["command"], "--host", "127.0.0.1")
        command = with_flag(command, "--port", str(combiner_port))
        command = with_flag(command, "--advertise-host", "127.0.0.1")
        combiner_check = _healthcheck(combiner, {container_combiner_port: str(combiner_port)})
        topology.start(
            "combiner",
            command,
            environment(combiner),
            ready=lambda: topology.passes(combiner_check, environment(combiner)),
        )
        assert [c["tls"] for c in topology.fed.api.get_combiners()["result"]] == [True]

        # init: one shot, the example package from the repository where the image has it.
        command = [arg.replace(image_examples_dir(), str(REPO / "examples")) for arg in init["command"]]
        topology.run_to_completion("init", command, environment(init), timeout=180)

        # client: two replicas, one command and one environment, each in its own container.
        for replica in (1, 2):
            topology.start(f"client-{replica}", client["command"], environment(client))
        rounds = topology.run_rounds(ROUNDS, client["deploy"]["replicas"])

        # Each replica held its own partition: different training sets, so different num_examples
        # (the 1,797 digits split in two: 719 and 718 training examples) ...
        for round_ in rounds:
            counts = sorted(c["num_examples"] for c in round_["clients"])
            assert len(counts) == 2 and counts[0] != counts[1], round_["clients"]
        # ... read from different partition files, in the package each downloaded from the API.
        partitions = set()
        for replica in (1, 2):
            files = list((topology.pods / f"client-{replica}").rglob("data/clients/*/mnist.npz"))
            assert len(files) == 1, files
            assert "scaleout.yaml" in {p.name for p in files[0].parents[3].iterdir()}
            partitions.add(files[0].parent.name)
        assert partitions == {"1", "2"}
        # Each replica's credential (run_rounds: one of its own) is kept owner-only in its work dir.
        for replica in (1, 2):
            (credential,) = (topology.pods / f"client-{replica}").rglob("credential")
            assert credential.stat().st_mode & 0o077 == 0
