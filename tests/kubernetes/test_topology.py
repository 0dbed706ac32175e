"""The dev overlay as processes on loopback: each of our pods started from its rendered `args` and `env`
(Secrets as kustomize generates them, $(POD_NAME) expanded as the kubelet does), with only the cluster's
DNS names, ports and volumes rewritten to loopback, the test's MongoDB-compatible and S3 servers
standing in for the mongo and minio StatefulSets. The probes are run as the kubelet would (the API's
HTTPS readiness path, the combiner's exec command); the operator's steps from README.md (TLS Secret
from `scaleout certs create`, enrollment Secret from the API) come first. Two rounds prove the wiring.
"""

import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.compose.compose import REPO, image_examples_dir
from tests.e2e.federation import SCALEOUT, free_port
from tests.kubernetes.kube import container, environment, expand, resources, workload
from tests.topology import Loopback, Topology, flag_value, with_flag

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

ROUNDS = 2
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


def test_the_dev_overlay_runs_two_rounds_on_loopback(tmp_path: Path, loopback: Loopback) -> None:
    api, combiner, init, client = (
        workload(OVERLAY, name)
        for name in ("scaleout-api", "scaleout-combiner", "scaleout-init", "scaleout-client")
    )
    services = resources(OVERLAY, "Service")
    combiner_port, metrics_port = free_port(), free_port()
    container_api_port = services["scaleout-api"]["spec"]["ports"][0]["port"]
    api_urls = {f"https://scaleout-api:{container_api_port}", f"https://127.0.0.1:{container_api_port}"}
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
        env = loopback.environment(environment(OVERLAY, manifest), api_urls)
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

    # The federation's own APIClient is the operator's CLI: the admin token and the CA.
    admin_env = env_of(api, tmp_path)
    operator = {
        "SCALEOUT_API_TOKEN": admin_env["SCALEOUT_API_TOKEN"],
        "SCALEOUT_TLS_CA": admin_env["SCALEOUT_TLS_CA"],
        "SCALEOUT_TLS_CERT": admin_env["SCALEOUT_TLS_CERT"],
    }
    with Topology(tmp_path, loopback, operator) as topology:
        workdir = topology.workdir("api")
        args = with_flag(container(api)["args"], "--host", "127.0.0.1")
        args = with_flag(args, "--port", str(loopback.api_port))
        readiness = container(api)["readinessProbe"]["httpGet"]
        assert readiness["scheme"] == "HTTPS"
        ca = Path(operator["SCALEOUT_TLS_CA"])
        ready = f"{loopback.api_url}{readiness['path']}"
        topology.start("api", args, env_of(api, workdir), cwd=workdir, ready=lambda: _ready(ready, ca))

        # combiner: $(POD_NAME) expanded; it listens and advertises where the test says.
        workdir = topology.workdir(pod)
        env = env_of(combiner, workdir)
        env["POD_NAME"] = pod
        args = expand(container(combiner)["args"], env)
        assert flag_value(args, "--advertise-host") == combiner_dns
        container_port = flag_value(args, "--port")
        args = with_flag(with_flag(args, "--host", "127.0.0.1"), "--port", str(combiner_port))
        args = with_flag(
            with_flag(args, "--advertise-host", "127.0.0.1"), "--metrics-port", str(metrics_port)
        )
        probe = container(combiner)["readinessProbe"]["exec"]["command"]
        probe = [SCALEOUT, *[str(combiner_port) if arg == container_port else arg for arg in probe[1:]]]
        topology.start(pod, args, env, cwd=workdir, ready=lambda: topology.passes(probe, env))
        assert [(c["name"], c["tls"]) for c in topology.fed.api.get_combiners()["result"]] == [(pod, True)]

        # init: the Job, with the example package from the repository where the image has it.
        args = [arg.replace(image_examples_dir(), str(REPO / "examples")) for arg in container(init)["args"]]
        workdir = topology.workdir("init")
        topology.run_to_completion("init", args, env_of(init, workdir), timeout=180, cwd=workdir)

        # The operator's enrollment Secret (README), then the demo clients' replicas, one env for all.
        replicas = client["spec"]["replicas"]
        issued = topology.fed.api.create_enrollment("demo", uses=replicas)
        secret_file = Path(env_of(client, tmp_path)["SCALEOUT_ENROLL_SECRET_FILE"])
        assert secret_file.parent == secrets["scaleout-enrollment"] and secret_file.name == "secret"
        secret_file.write_text(issued["secret"])
        for replica in range(replicas):
            name = f"scaleout-client-{replica}"
            workdir = topology.workdir(name)
            topology.start(name, container(client)["args"], env_of(client, workdir), cwd=workdir)
        topology.run_rounds(ROUNDS, replicas)

        # The metrics port the combiner's Service names counts both rounds.
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text
        values = {
            (s.name, tuple(s.labels.items())): s.value
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
        }
        assert values[("scaleout_combiner_rounds_total", (("result", "ok"),))] == ROUNDS
        assert values[("scaleout_combiner_updates_accepted_total", ())] == ROUNDS * replicas
