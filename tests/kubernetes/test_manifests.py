"""deploy/kubernetes/ without a cluster: every overlay renders with `kubectl kustomize`, validates against
the Kubernetes schemas, runs real `scaleout` commands, keeps the credentials apart as compose does, and
opens only the API and the combiners to the network.

Only a cluster can check the rest: that the images pull, that the probes pass inside their pods, that
the network policies are enforced (they need a CNI that implements them).
"""

import re
import subprocess
from typing import Any

import kubernetes_validate
import pytest

from scaleout.roles import REST_RULES
from tests.compose.compose import DOCKERFILE, IMAGE, image_examples_dir
from tests.compose.test_compose_file import _variables_the_code_reads
from tests.e2e.federation import SCALEOUT
from tests.kubernetes.kube import (
    KUBERNETES_VERSION,
    KUSTOMIZE_DIR,
    OVERLAYS,
    container,
    environment,
    expand,
    render,
    resources,
    secret_data,
    workload,
    workloads,
)

OURS = ("scaleout-api", "scaleout-combiner", "scaleout-init", "scaleout-client")
CERTS = "/var/lib/scaleout/certs"


def ours(overlay: str) -> dict[str, Any]:
    """The workloads that run our image."""
    return {name: doc for name, doc in workloads(overlay).items() if container(doc)["image"] == IMAGE}


def probe_commands(manifest: Any) -> list[list[str]]:
    probes = (container(manifest).get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe"))
    return [probe["exec"]["command"] for probe in probes if probe and "exec" in probe]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    documents = render(overlay)
    assert documents
    for document in documents:
        # strict: a field the schema does not know (a typo, a misplaced key) is an error too.
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_what_a_cluster_would() -> None:
    (service,) = resources("dev", "Service")["scaleout-api"]["spec"]["ports"]
    broken = resources("dev", "Service")["scaleout-api"]
    broken["spec"]["ports"] = [{**service, "port": "https"}]
    with pytest.raises(kubernetes_validate.ValidationError, match="'https' is not of type 'integer'"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_dev_runs_the_stores_in_the_cluster_and_production_uses_external_ones() -> None:
    dev = {name: manifest["kind"] for name, manifest in workloads("dev").items()}
    assert dev == {
        "scaleout-api": "Deployment",
        "scaleout-client": "Deployment",
        "scaleout-combiner": "StatefulSet",
        "scaleout-init": "Job",
        "mongo": "StatefulSet",
        "minio": "StatefulSet",
    }
    production = {name: manifest["kind"] for name, manifest in workloads("production").items()}
    assert production == {"scaleout-api": "Deployment", "scaleout-combiner": "StatefulSet"}
    assert workload("production", "scaleout-combiner")["spec"]["replicas"] == 3
    assert resources("production", "Secret") == {}  # the operator makes them; none is kept in the repository
    stores = secret_data("dev")["scaleout-stores"]
    assert stores["db-uri"].startswith("mongodb://scaleout:") and "@mongo:27017/" in stores["db-uri"]
    assert stores["models-uri"] == "s3://scaleout?endpoint=minio:9000&secure=false"
    mongo, minio = secret_data("dev")["scaleout-mongo"], secret_data("dev")["scaleout-minio"]
    assert f"mongodb://{mongo['username']}:{mongo['password']}@" in stores["db-uri"]
    assert (stores["s3-access-key"], stores["s3-secret-key"]) == (minio["username"], minio["password"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_combiner_advertises_its_own_stable_dns_name(overlay: str) -> None:
    combiners = workload(overlay, "scaleout-combiner")
    service = resources(overlay, "Service")[combiners["spec"]["serviceName"]]
    assert service["spec"]["clusterIP"] == "None"  # headless: one DNS record per pod
    assert service["spec"]["selector"].items() <= combiners["spec"]["template"]["metadata"]["labels"].items()
    args = container(combiners)["args"]
    (pod_name,) = [item for item in container(combiners)["env"] if item["name"] == "POD_NAME"]
    assert pod_name["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    pod = f"{combiners['metadata']['name']}-1"
    expanded = expand(args, {"POD_NAME": pod})
    assert expanded[expanded.index("--name") + 1] == pod
    assert expanded[expanded.index("--advertise-host") + 1] == f"{pod}.{service['metadata']['name']}"
    port = int(expanded[expanded.index("--port") + 1])
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]}["grpc"] == port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_command_and_probe_is_a_real_scaleout_command(overlay: str) -> None:
    commands = []
    for name, manifest in ours(overlay).items():
        commands.append((name, container(manifest)["args"]))
        for command in probe_commands(manifest):
            assert command[0] == "scaleout", command
            commands.append((f"{name} probe", command[1:]))
    assert {what for what, _ in commands} >= {"scaleout-api", "scaleout-combiner", "scaleout-combiner probe"}
    for what, command in commands:
        # click rejects an unknown subcommand or option even when --help follows it.
        result = subprocess.run([SCALEOUT, *command, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{what}: scaleout {' '.join(command)} --help\n{result.stderr}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_variables_set_are_ones_the_code_reads(overlay: str) -> None:
    known = _variables_the_code_reads() | {"POD_NAME"}  # POD_NAME feeds the args' $(POD_NAME)
    for name, manifest in ours(overlay).items():
        keys = {item["name"] for item in container(manifest).get("env", [])}
        assert keys <= known, f"{name} sets variables no scaleout code reads: {sorted(keys - known)}"


def test_the_image_is_the_dockerfile_one_and_its_paths_exist() -> None:
    assert set(ours("dev")) == set(OURS)
    assert set(ours("production")) == {"scaleout-api", "scaleout-combiner"}
    init = container(workload("dev", "scaleout-init"))
    assert init["args"][init["args"].index("--package") + 1].startswith(image_examples_dir() + "/")
    assert "/var/lib/scaleout" in DOCKERFILE.read_text()  # the work dir every pod mounts writable


def test_the_api_probes_are_its_public_liveness_and_readiness_routes() -> None:
    api = container(workload("dev", "scaleout-api"))
    paths = {probe: api[probe]["httpGet"]["path"] for probe in ("livenessProbe", "readinessProbe")}
    assert paths == {"livenessProbe": "/api/v1/health/live", "readinessProbe": "/api/v1/health/ready"}
    assert all(REST_RULES[("GET", path)].public for path in paths.values())  # probes carry no token
    assert api["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_the_combiner_probes_ask_grpc_health_over_tls_without_a_token() -> None:
    combiner = workload("dev", "scaleout-combiner")
    commands = probe_commands(combiner)
    assert len(commands) == 3 and all(c == commands[0] for c in commands)
    assert {"--grpc-health", "--tls"} <= set(commands[0])
    port = commands[0][commands[0].index("--port") + 1]
    assert port == container(combiner)["args"][container(combiner)["args"].index("--port") + 1]


def test_the_credentials_are_kept_apart_as_in_compose() -> None:
    """The admin token reaches only the API and init; combiners hold the controller's; clients neither,
    they enroll; the store credentials reach only the API and the combiners."""
    holders: dict[str, set[str]] = {}
    for name, manifest in ours("dev").items():
        for item in container(manifest).get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                holders.setdefault(re.sub(r"-[a-z0-9]{10}$", "", ref["name"]), set()).add(name)
        for volume in manifest["spec"]["template"]["spec"].get("volumes", []):
            if "secret" in volume:
                holders.setdefault(volume["secret"]["secretName"], set()).add(name)
    assert holders == {
        "scaleout-admin": {"scaleout-api", "scaleout-init"},
        "scaleout-controller": {"scaleout-api", "scaleout-combiner"},
        "scaleout-stores": {"scaleout-api", "scaleout-combiner"},
        "scaleout-tls": set(OURS),
        "scaleout-enrollment": {"scaleout-client"},
    }
    # Only the servers get the private key; the others mount ca.pem alone.
    for name in ("scaleout-init", "scaleout-client"):
        volumes = workload("dev", name)["spec"]["template"]["spec"]["volumes"]
        (tls,) = [volume for volume in volumes if volume["name"] == "certs"]
        assert tls["secret"]["items"] == [{"key": "ca.pem", "path": "ca.pem"}]
    assert environment("dev", workload("dev", "scaleout-client"))["SCALEOUT_ENROLL_SECRET_FILE"].startswith(
        "/var/lib/scaleout/enrollment/"
    )


def test_production_secrets_are_the_ones_its_instructions_create() -> None:
    instructions = (KUSTOMIZE_DIR / "overlays" / "production" / "kustomization.yaml").read_text()
    created = set(re.findall(r"kubectl create secret generic (\S+)", instructions))
    referenced = set()
    for manifest in ours("production").values():
        for item in container(manifest).get("env", []):
            if ref := item.get("valueFrom", {}).get("secretKeyRef"):
                referenced.add(ref["name"])
        for volume in manifest["spec"]["template"]["spec"].get("volumes", []):
            if "secret" in volume:
                referenced.add(volume["secret"]["secretName"])
    assert referenced == created


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_unprivileged_with_resources(overlay: str) -> None:
    for manifest in workloads(overlay).values():
        pod = manifest["spec"]["template"]["spec"]
        name = manifest["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name  # nothing here calls the Kubernetes API
        for c in pod["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}, name
            assert {"requests", "limits"} <= set(c["resources"]), name
    for name in ("scaleout-api", "scaleout-combiner"):
        assert container(workload(overlay, name))["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_api_and_the_combiners_take_connections_from_anywhere(overlay: str) -> None:
    policies = resources(overlay, "NetworkPolicy")
    deny = [p for p in policies.values() if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]]
    assert len(deny) == 1 and deny[0]["spec"]["policyTypes"] == ["Ingress"]
    open_to_all: dict[str, set[int]] = {}
    for policy in policies.values():
        component = policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component")
        for rule in policy["spec"].get("ingress", []):
            if "from" not in rule:  # no source restriction: anyone may connect to these ports
                open_to_all.setdefault(component, set()).update(p["port"] for p in rule["ports"])
    api_port = int(container(workload(overlay, "scaleout-api"))["args"][-1])
    assert open_to_all == {"api": {api_port}, "combiner": {12080}}
    if overlay == "dev":  # the stores: only from the API and the combiners
        (rule,) = policies["scaleout-stores-ingress"]["spec"]["ingress"]
        (source,) = rule["from"]
        assert source["podSelector"]["matchExpressions"][0]["values"] == ["api", "combiner"]


def test_the_readme_commands_name_real_workloads_secrets_and_scaleout_commands() -> None:
    readme = (KUSTOMIZE_DIR.parents[1] / "README.md").read_text()
    section = readme.split("## Deploy on Kubernetes", 1)[1].split("\n## ", 1)[0]
    lines = section.replace("\\\n", " ").splitlines()
    execs = [line.split(" -- scaleout ", 1) for line in lines if "kubectl exec deploy/" in line]
    assert len(execs) >= 2
    for target, command in execs:
        assert target.strip().removeprefix("kubectl exec deploy/") in workloads("dev")
        args = command.split("#")[0].split()
        result = subprocess.run([SCALEOUT, *args, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"scaleout {' '.join(args)}: {result.stderr}"
    created = set(re.findall(r"kubectl create secret generic (\S+)", section))
    assert created == {"scaleout-tls", "scaleout-enrollment"}  # what dev does not generate
    assert created | set(secret_data("dev")) >= {"scaleout-admin", "scaleout-controller", "scaleout-stores"}
    assert "kubectl apply -k deploy/kubernetes/overlays/dev" in section
