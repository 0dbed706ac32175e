"""The dev overlay as processes on loopback: each of our pods started from its rendered `args` and `env`
(Secrets as kustomize generates them, $(POD_NAME) expanded as the kubelet does), with only the cluster's
DNS names, ports and volumes rewritten to loopback, the test's MongoDB-compatible and S3 servers
standing in for the mongo and minio StatefulSets. The probes are run as the kubelet would (the API's
HTTPS readiness path, the combiner's exec command); the operator's steps from README.md (TLS Secret
from `scaleout certs create`, enrollment Secret from the API) come first. Two rounds prove the wiring.
"""

import os
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scaleout.store.uri import S3Credentials
from tests.compose.compose import (
    REPO,
    flag_value,
    image_examples_dir,
    loopback_mongo_uri,
    loopback_s3_uri,
    with_flag,
)
from tests.e2e.federation import SCALEOUT, Federation, free_port, wait_until
from tests.kubernetes.kube import container, environment, expand, resources, workload

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

ROUNDS = 2
START_TIMEOUT = 60.0
OVERLAY = "dev"


def mounts(manifest: dict[str, Any]) -> dict[str, str]:
    """mountPath -> the volume's source: 'secret:NAME' or 'emptyDir'."""
    pod = manifest["spec"]["template"]["spec"]
    sources = {
        volume["name"]: f"secret:{volume['secret']['secretName']}" if "secret" in volume else "emptyDir"
        for volume in pod.get("volumes", [])
    }
    return {
        mount["mountPath"]: sources[mount["name"]] for mount in container(manifest).get("volumeMounts", [])
    }


def _ready(url: str, ca: Path) -> bool:
    """An HTTPS probe that answers 200 (the kubelet does not verify; this checks the certificate too)."""
    with urllib.request.urlopen(url, timeout=10, context=ssl.create_default_context(cafile=ca)) as answer:
        return answer.status == 200


def test_the_dev_overlay_runs_two_rounds_on_loopback(
    tmp_path: Path,
    mongo_uri: str,
    mongo_database: str,
    s3_endpoint: str,
    s3_credentials: S3Credentials,
    s3_bucket: str,
) -> None:
    api, combiner, init, client = (
        workload(OVERLAY, name)
        for name in ("scaleout-api", "scaleout-combiner", "scaleout-init", "scaleout-client")
    )
    services = resources(OVERLAY, "Service")
    api_port, combiner_port, metrics_port = free_port(), free_port(), free_port()
    container_api_port = services["scaleout-api"]["spec"]["ports"][0]["port"]
    api_url = f"https://127.0.0.1:{api_port}"
    pod = f"{combiner['metadata']['name']}-0"  # the StatefulSet's first pod
    combiner_dns = f"{pod}.{combiner['spec']['serviceName']}"

    # The operator's steps (README): the TLS Secret's files, made for the names pods dial.
    secrets = {
        "scaleout-tls": tmp_path / "secrets" / "tls",
        "scaleout-enrollment": tmp_path / "secrets" / "enroll",
    }
    certs = subprocess.run(
        [
            SCALEOUT,
            "certs",
            "create",
            "--out",
            str(secrets["scaleout-tls"]),
            "--host",
            "scaleout-api",
            "--host",
            combiner_dns,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert certs.returncode == 0, certs.stderr
    secrets["scaleout-enrollment"].mkdir(parents=True)

    def env_of(manifest: dict[str, Any], workdir: Path) -> dict[str, str]:
        """The container's environment with the cluster's names and volumes made loopback."""
        env = environment(OVERLAY, manifest)
        if "SCALEOUT_DB" in env:
            env["SCALEOUT_DB"] = loopback_mongo_uri(env["SCALEOUT_DB"], mongo_uri, mongo_database)
        if "SCALEOUT_MODELS" in env:
            env["SCALEOUT_MODELS"] = loopback_s3_uri(env["SCALEOUT_MODELS"], s3_endpoint, s3_bucket)
            env["SCALEOUT_S3_ACCESS_KEY"] = s3_credentials.access_key
            env["SCALEOUT_S3_SECRET_KEY"] = s3_credentials.secret_key
        if "SCALEOUT_API_URL" in env:
            assert env["SCALEOUT_API_URL"] in {
                f"https://scaleout-api:{container_api_port}",
                f"https://127.0.0.1:{container_api_port}",
            }
            env["SCALEOUT_API_URL"] = api_url
        # A path under a mount is under its volume here; the longest mount wins (secrets are mounted
        # inside the work dir), and each value is rewritten once.
        volumes = sorted(mounts(manifest).items(), key=lambda item: -len(item[0]))
        for key, value in env.items():
            for path, source in volumes:
                if value == path or value.startswith(path + "/"):
                    local = (
                        secrets[source.removeprefix("secret:")] if source.startswith("secret:") else workdir
                    )
                    env[key] = str(local) + value[len(path) :]
                    break
        return env

    def pod_dir(name: str) -> Path:
        path = tmp_path / "pods" / name
        path.mkdir(parents=True)
        return path

    # The federation's own APIClient is the operator's CLI: the admin token and the CA.
    admin_env = env_of(api, tmp_path)
    operator = {
        "SCALEOUT_API_TOKEN": admin_env["SCALEOUT_API_TOKEN"],
        "SCALEOUT_TLS_CA": admin_env["SCALEOUT_TLS_CA"],
        "SCALEOUT_TLS_CERT": admin_env["SCALEOUT_TLS_CERT"],
    }
    blank = dict.fromkeys(operator, "")  # a pod has only its own environment
    fed = Federation(tmp_path, db="", models="", env=operator, api_port=api_port)
    try:
        workdir = pod_dir("api")
        args = with_flag(with_flag(container(api)["args"], "--host", "127.0.0.1"), "--port", str(api_port))
        process = fed._spawn("api", args, {**blank, **env_of(api, workdir)}, cwd=workdir)
        readiness = container(api)["readinessProbe"]["httpGet"]
        assert readiness["scheme"] == "HTTPS"
        wait_until(
            lambda: (
                fed._check_alive(process)
                or _ready(f"{api_url}{readiness['path']}", Path(operator["SCALEOUT_TLS_CA"]))
            ),
            START_TIMEOUT,
            "the api's readiness probe",
        )

        # combiner: $(POD_NAME) expanded; it listens and advertises where the test says.
        workdir = pod_dir(pod)
        env = env_of(combiner, workdir)
        env["POD_NAME"] = pod
        args = expand(container(combiner)["args"], env)
        assert flag_value(args, "--advertise-host") == combiner_dns
        container_port = flag_value(args, "--port")
        args = with_flag(with_flag(args, "--host", "127.0.0.1"), "--port", str(combiner_port))
        args = with_flag(
            with_flag(args, "--advertise-host", "127.0.0.1"), "--metrics-port", str(metrics_port)
        )
        process = fed._spawn(pod, args, {**blank, **env}, cwd=workdir)
        probe = container(combiner)["readinessProbe"]["exec"]["command"]
        probe = [SCALEOUT, *[str(combiner_port) if arg == container_port else arg for arg in probe[1:]]]

        def probed() -> bool:
            fed._check_alive(process)
            return (
                subprocess.run(
                    probe, capture_output=True, timeout=30, env={**os.environ, **blank, **env}
                ).returncode
                == 0
            )

        wait_until(probed, START_TIMEOUT, "the combiner's readiness probe")
        assert [(c["name"], c["tls"]) for c in fed.api.get_combiners()["result"]] == [(pod, True)]

        # init: the Job, with the example package from the repository where the image has it.
        workdir = pod_dir("init")
        args = [arg.replace(image_examples_dir(), str(REPO / "examples")) for arg in container(init)["args"]]
        process = fed._spawn("init", args, {**blank, **env_of(init, workdir)}, cwd=workdir)
        assert process.popen.wait(timeout=180) == 0, process.log()
        del fed.processes["init"]  # done: a Job that completed
        seed_id = fed.api.get_models()["result"][0]["id"]

        # The operator's enrollment Secret (README), then the demo clients' replicas, one env for all.
        replicas = client["spec"]["replicas"]
        issued = fed.api.create_enrollment("demo", uses=replicas)
        secret_file = Path(env_of(client, tmp_path)["SCALEOUT_ENROLL_SECRET_FILE"])
        assert secret_file.parent == secrets["scaleout-enrollment"] and secret_file.name == "secret"
        secret_file.write_text(issued["secret"])
        for replica in range(replicas):
            name = f"scaleout-client-{replica}"
            workdir = pod_dir(name)
            fed._spawn(name, container(client)["args"], {**blank, **env_of(client, workdir)}, cwd=workdir)
        online = fed.wait_for_clients(replicas)

        session_id = fed.api.start_session(rounds=ROUNDS, min_clients=len(online), round_timeout=60)
        session = fed.api.wait_for_session(session_id, 240)
        assert session["status"] == "Finished", session
        rounds = fed.api.get_rounds(session_id=session_id, sort_key="index")["result"]
        assert [r["status"] for r in rounds] == ["Finished"] * ROUNDS
        assert [m["id"] for m in fed.api.get_model_trail(rounds[-1]["model_id"])] == [seed_id] + [
            r["model_id"] for r in rounds
        ]
        # Each replica enrolled for a credential of its own, and trained under it.
        tokens = fed.api.get_client_tokens()["result"]
        assert sorted(t["client_id"] for t in tokens) == sorted(c["client_id"] for c in rounds[0]["clients"])
        # The metrics port the combiner's Service names counts both rounds.
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text
        values = {
            (s.name, tuple(s.labels.items())): s.value
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
        }
        assert values[("scaleout_combiner_rounds_total", (("result", "ok"),))] == ROUNDS
        assert values[("scaleout_combiner_updates_accepted_total", ())] == ROUNDS * replicas
    except BaseException:
        print(fed.logs(), file=sys.stderr)
        raise
    finally:
        fed.stop()
