"""deploy/kubernetes/ as `kubectl kustomize` renders it, and what the tests read out of the result.

The tests read what kustomize prints (generated Secrets with their hashed names, patches applied,
labels added to selectors), so they check what a cluster would be given, not our reading of the YAML.
"""

import base64
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUSTOMIZE_DIR = REPO / "deploy" / "kubernetes"
OVERLAYS = ("dev", "production")
# The schemas the manifests are checked against: kubectl's own minor version here (v1.32).
KUBERNETES_VERSION = "1.32"

Manifest = dict[str, Any]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip(
            "kubectl is not installed: `kubectl kustomize` renders the manifests (apt-get install kubectl)"
        )
    return path


@cache
def _render(overlay: str) -> str:
    result = subprocess.run(
        [kubectl(), "kustomize", str(KUSTOMIZE_DIR / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{result.stderr}"
    return result.stdout


def render(overlay: str) -> list[Manifest]:
    """Every resource of the overlay, as kustomize builds it (a fresh copy each call)."""
    return [doc for doc in yaml.safe_load_all(_render(overlay)) if doc]


def resources(overlay: str, kind: str) -> dict[str, Manifest]:
    return {doc["metadata"]["name"]: doc for doc in render(overlay) if doc["kind"] == kind}


WORKLOADS = frozenset({"Deployment", "StatefulSet", "Job"})


def workloads(overlay: str) -> dict[str, Manifest]:
    """The Deployments, StatefulSets and Jobs by name."""
    return {doc["metadata"]["name"]: doc for doc in render(overlay) if doc["kind"] in WORKLOADS}


def workload(overlay: str, name: str) -> Manifest:
    """The Deployment, StatefulSet or Job called name."""
    return workloads(overlay)[name]


def container(manifest: Manifest) -> Manifest:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    return only


def secret_data(overlay: str) -> dict[str, dict[str, str]]:
    """Generated Secrets by their name before kustomize's hash suffix: key -> decoded value."""
    return {
        re.sub(r"-[a-z0-9]{10}$", "", name): {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}
        for name, doc in resources(overlay, "Secret").items()
    }


def environment(overlay: str, manifest: Manifest) -> dict[str, str]:
    """The container's environment with each secretKeyRef read from the overlay's generated Secrets and
    each fieldRef left as '$(field)'."""
    secrets = secret_data(overlay)
    env = {}
    for item in container(manifest).get("env", []):
        source = item.get("valueFrom", {})
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[item["name"]] = secrets[re.sub(r"-[a-z0-9]{10}$", "", ref["name"])][ref["key"]]
        elif "fieldRef" in source:
            env[item["name"]] = f"$({source['fieldRef']['fieldPath']})"
        else:
            env[item["name"]] = item["value"]
    return env


def expand(args: list[str], env: dict[str, str]) -> list[str]:
    """Kubernetes' $(VAR) expansion of a container's args from its environment."""
    return [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), arg) for arg in args]
