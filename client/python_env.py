"""The environment a compute package's entry points run in.

With ``python_env: python_env.yaml`` in ``scaleout.yaml`` the client builds an isolated virtualenv once
per distinct spec and reuses it: the directory name carries a sha256 of the normalized spec (plus the
interpreter and the ``scaleoututil`` source, since a venv is bound to both), the build runs under a
file lock so two clients on one machine never build it twice, and a marker file written only after a
successful build makes a crashed build start over. ``scaleoututil`` is copied from the running
installation rather than installed from an index, so it works offline and matches the client.
Without ``python_env`` the entry points run in the client's own environment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock

import scaleoututil
from scaleout.client.process import LineSink, log_line, stream_process
from scaleout.client.yamlfile import read_yaml
from scaleout.errors import PackageError

logger = logging.getLogger(__name__)

# The runtime provides these; a pinned version from PyPI would shadow ours (or not exist).
PROVIDED_BY_RUNTIME = frozenset({"scaleout", "scaleout-edge", "scaleoututil"})
# scaleoututil imports numpy, so every venv needs it even when the spec forgets it.
REQUIRED_DEPENDENCIES = ("numpy",)
MARKER_NAME = ".scaleout-env-ready"
SPEC_KEYS = ("name", "python", "build_dependencies", "dependencies")
DEFAULT_LOCK_TIMEOUT = 3600.0  # a torch install can take many minutes; past this, report who holds it
_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def default_env_dir() -> Path:
    """Where venvs are cached when the caller names no directory."""
    return Path.home() / ".cache" / "scaleout" / "envs"


@dataclass(frozen=True)
class Environment:
    """How to run a command inside an environment: PATH prefix and extra variables."""

    bin_dir: Path
    variables: Mapping[str, str] = field(default_factory=dict)

    def apply(self, base: Mapping[str, str]) -> dict[str, str]:
        """Return ``base`` with this environment's bin first on PATH and its variables set."""
        env = dict(base)
        env.pop("PYTHONHOME", None)  # would make the venv python load another installation's stdlib
        env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", os.defpath)])
        env.update(self.variables)
        return env


def current_environment() -> Environment:
    """The running interpreter's environment, so ``python`` in a command means this interpreter."""
    bin_dir = Path(sys.executable).parent
    variables = {"VIRTUAL_ENV": sys.prefix} if sys.prefix != sys.base_prefix else {}
    return Environment(bin_dir=bin_dir, variables=variables)


@dataclass(frozen=True)
class PythonEnvSpec:
    """A parsed ``python_env.yaml`` with runtime-provided packages dropped and numpy ensured."""

    name: str
    python: str | None
    build_dependencies: tuple[str, ...]
    dependencies: tuple[str, ...]

    def digest(self) -> str:
        """sha256 of the normalized spec, the interpreter, and the scaleoututil source copied in."""
        payload = {
            "spec": [self.name, self.python, list(self.build_dependencies), list(self.dependencies)],
            "interpreter": [sys.version, os.path.realpath(sys.executable)],
            "scaleoututil": _tree_digest(Path(scaleoututil.__file__).parent),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def requirement_name(requirement: str) -> str:
    """The PEP 503 normalized project name of a requirement (``Scaleout_Edge>=1`` -> ``scaleout-edge``)."""
    match = _NAME_RE.match(requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else requirement.strip().lower()


def load_spec(path: Path) -> PythonEnvSpec:
    """Read and normalize ``python_env.yaml``; errors name the file and the key to fix."""
    if not path.is_file():
        raise PackageError(
            f"python_env file {path} does not exist; create it or remove python_env from scaleout.yaml"
        )
    raw = read_yaml(path) or {}
    if not isinstance(raw, dict):
        raise PackageError(f"{path} must be a mapping with keys {', '.join(SPEC_KEYS)}")
    python = raw.get("python")
    return PythonEnvSpec(
        name=str(raw.get("name") or "env"),
        python=None if python is None else str(python),
        build_dependencies=_requirements(raw, "build_dependencies", path),
        dependencies=_with_required(_requirements(raw, "dependencies", path)),
    )


def _requirements(raw: dict[str, Any], key: str, path: Path) -> tuple[str, ...]:
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PackageError(f"{path}: '{key}' must be a list of requirement strings such as 'numpy>=1.26'")
    kept = [item.strip() for item in value if item.strip()]
    return tuple(item for item in kept if requirement_name(item) not in PROVIDED_BY_RUNTIME)


def _with_required(dependencies: tuple[str, ...]) -> tuple[str, ...]:
    names = {requirement_name(item) for item in dependencies}
    return dependencies + tuple(req for req in REQUIRED_DEPENDENCIES if req not in names)


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class PythonEnv:
    """A cached virtualenv for one ``python_env.yaml``, created at most once per machine."""

    def __init__(
        self,
        spec_path: Path,
        env_dir: Path,
        sink: LineSink | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self.spec_path = Path(spec_path)
        self.spec = load_spec(self.spec_path)
        safe_name = re.sub(r"[^A-Za-z0-9._-]+", "-", self.spec.name)[:40]
        self.path = Path(env_dir).expanduser().resolve() / f"{safe_name}-{self.spec.digest()[:16]}"
        self.sink = sink or log_line
        self.lock_timeout = lock_timeout

    @property
    def bin_dir(self) -> Path:
        return self.path / "bin"

    @property
    def python(self) -> Path:
        return self.bin_dir / "python"

    @property
    def ready(self) -> bool:
        """True when a previous build finished (the marker is written last)."""
        return (self.path / MARKER_NAME).is_file()

    def ensure(self) -> Environment:
        """Build the venv unless it is already built, and return how to run commands in it."""
        if not self.ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = filelock.FileLock(str(self.path) + ".lock")
            try:
                with lock.acquire(timeout=self.lock_timeout):
                    if not self.ready:  # another process may have built it while we waited
                        self._build()
            except filelock.Timeout as exc:
                raise PackageError(
                    f"waited {self.lock_timeout:.0f} s for another process building {self.path} "
                    f"(lock {lock.lock_file}); retry, or delete the lock if no client is running"
                ) from exc
        return Environment(bin_dir=self.bin_dir, variables={"VIRTUAL_ENV": str(self.path)})

    def _build(self) -> None:
        if self.path.exists():
            logger.warning("removing incomplete environment %s from an earlier failed build", self.path)
            shutil.rmtree(self.path)
        logger.info("creating python_env %s", self.path)
        self._run([_base_python(self.spec.python), "-m", "venv", str(self.path)], "create the virtualenv")
        for requirements, what in (
            (self.spec.build_dependencies, "build_dependencies"),
            (self.spec.dependencies, "dependencies"),
        ):
            if requirements:
                self._run([str(self.python), "-m", "pip", "install", *requirements], f"install {what}")
        self._copy_scaleoututil()
        self._run([str(self.python), "-c", "import scaleoututil.helpers.helpers"], "import scaleoututil")
        (self.path / MARKER_NAME).write_text(json.dumps(dataclasses.asdict(self.spec)))

    def _copy_scaleoututil(self) -> None:
        """Copy the running scaleoututil into site-packages: no index needed, same version as ours."""
        site_packages = subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if not site_packages:
            raise PackageError(f"cannot find site-packages of {self.python}; delete {self.path} and retry")
        source = Path(scaleoututil.__file__).parent
        shutil.copytree(
            source,
            Path(site_packages) / "scaleoututil",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests"),
            dirs_exist_ok=True,
        )

    def _run(self, command: list[str], what: str) -> None:
        returncode, tail = stream_process(command, env=None, cwd=None, sink=self.sink)
        if returncode != 0:
            raise PackageError(
                f"could not {what} in {self.path} for {self.spec_path} (exit code {returncode}); "
                f"check the requirements listed there. Last lines of stderr:\n" + "\n".join(tail)
            )


def _base_python(version: str | None) -> str:
    """The interpreter to base the venv on: ``pythonX.Y`` from PATH if the spec asks for another one."""
    current = f"{sys.version_info.major}.{sys.version_info.minor}"
    if version is None or version == current or version.startswith(current + "."):
        return sys.executable
    wanted = ".".join(version.split(".")[:2])
    found = shutil.which(f"python{wanted}")
    if found:
        return found
    logger.warning("python_env asks for python %s, which is not on PATH; using %s", version, current)
    return sys.executable
