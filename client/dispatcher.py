"""Run a compute package's entry points the way its ``scaleout.yaml`` declares them.

``scaleout.yaml`` holds an optional ``python_env`` (a ``python_env.yaml`` next to it) and
``entry_points``: ``build``, ``startup``, ``train``, ``validate``, ``predict``, each ``{command: ...}``.
An entry point runs as its command with the task's arguments appended (``python train.py IN OUT``),
in the package directory, inside the package's environment. Arguments are passed as they are, so
paths must be absolute (the command's working directory is the package, not the caller's).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaleout.client.process import LineSink, log_line, stop_group, stream_process
from scaleout.client.python_env import Environment, PythonEnv, current_environment, default_env_dir
from scaleout.client.yamlfile import read_yaml
from scaleout.errors import PackageError

PROJECT_FILE = "scaleout.yaml"
STDERR_TAIL_LINES = 20


@dataclass(frozen=True)
class Project:
    """A parsed ``scaleout.yaml``: entry point name -> command, and the optional python_env file."""

    package_dir: Path
    entry_points: Mapping[str, str]
    python_env: str | None

    @property
    def file(self) -> Path:
        return self.package_dir / PROJECT_FILE


@dataclass(frozen=True)
class RunResult:
    """What an entry point run did: its full command line and how long it took."""

    entry_point: str
    command: list[str]
    returncode: int
    seconds: float


def load_project(package_dir: str | os.PathLike[str]) -> Project:
    """Read ``scaleout.yaml`` in ``package_dir``; errors name the file and the key to fix."""
    package_dir = Path(package_dir).resolve()
    path = package_dir / PROJECT_FILE
    if not path.is_file():
        raise PackageError(f"no {PROJECT_FILE} at {path}; is {package_dir} the compute package folder?")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise PackageError(f"{path} must be a mapping with an 'entry_points' key")
    return Project(package_dir, _entry_points(raw, path), _python_env(raw, path))


def _entry_points(raw: dict[str, Any], path: Path) -> dict[str, str]:
    entries = raw.get("entry_points")
    if not isinstance(entries, dict) or not entries:
        raise PackageError(
            f"{path} has no 'entry_points' mapping; add one, "
            "e.g. entry_points: {train: {command: python train.py}}"
        )
    commands = {}
    for name, entry in entries.items():
        command = entry.get("command") if isinstance(entry, dict) else None
        if not isinstance(command, str) or not command.strip():
            raise PackageError(
                f"{path}: entry_points.{name} must be a mapping with a 'command' string, "
                f"e.g. {name}: {{command: python {name}.py}}"
            )
        try:
            shlex.split(command)
        except ValueError as exc:
            raise PackageError(f"{path}: entry_points.{name}.command cannot be parsed ({exc})") from exc
        commands[str(name)] = command
    return commands


def _python_env(raw: dict[str, Any], path: Path) -> str | None:
    value = raw.get("python_env")
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise PackageError(f"{path}: 'python_env' must be a file name such as python_env.yaml, or be removed")
    return value


class Dispatcher:
    """Runs entry points of one compute package; builds its python_env on first use."""

    def __init__(
        self,
        package_dir: str | os.PathLike[str],
        env_dir: str | os.PathLike[str] | None = None,
        sink: LineSink | None = None,
    ) -> None:
        self.project = load_project(package_dir)
        self.env_dir = Path(env_dir) if env_dir is not None else default_env_dir()
        self.sink = sink or log_line
        self._environment: Environment | None = None
        self._running: set[subprocess.Popen[bytes]] = set()  # entry points running now, for stop()
        self._running_lock = threading.Lock()

    @property
    def package_dir(self) -> Path:
        return self.project.package_dir

    def python_env(self) -> PythonEnv | None:
        """The package's cached virtualenv, or None when it runs in the current environment."""
        if self.project.python_env is None:
            return None
        return PythonEnv(self.package_dir / self.project.python_env, self.env_dir, sink=self.sink)

    def environment(self) -> Environment:
        """Where commands run: the package's venv (built now if needed) or the current environment."""
        if self._environment is None:
            venv = self.python_env()
            self._environment = venv.ensure() if venv else current_environment()
        return self._environment

    def has(self, entry_point: str) -> bool:
        return entry_point in self.project.entry_points

    def command(self, entry_point: str, args: Sequence[str | os.PathLike[str]] = ()) -> list[str]:
        """The command line for ``entry_point``: its command, shell-split, with ``args`` appended."""
        if not self.has(entry_point):
            declared = ", ".join(self.project.entry_points) or "none"
            raise PackageError(
                f"{self.project.file} has no entry point '{entry_point}'; "
                f"add one under entry_points (declared: {declared})"
            )
        return [*shlex.split(self.project.entry_points[entry_point]), *map(str, args)]

    def run(
        self,
        entry_point: str,
        args: Sequence[str | os.PathLike[str]] = (),
        extra_env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> RunResult:
        """Run ``entry_point`` with ``args``; raise PackageError unless it exits 0 within ``timeout`` s."""
        command = self.command(entry_point, args)
        # The child inherits the caller's environment (as any subprocess would), plus the package's.
        env = self.environment().apply(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")  # a piped python child would otherwise hold its prints
        env.update(extra_env or {})
        started = time.monotonic()
        try:
            returncode, tail = stream_process(
                command,
                env,
                self.package_dir,
                self.sink,
                timeout=timeout,
                tail_lines=STDERR_TAIL_LINES,
                started=self._track,
            )
        except subprocess.TimeoutExpired as exc:
            raise PackageError(
                f"entry point '{entry_point}' ({shlex.join(command)}) did not finish within {timeout:g} s "
                "and was stopped; make it faster or raise the timeout"
            ) from exc
        except OSError as exc:
            raise PackageError(
                f"entry point '{entry_point}' could not start '{command[0]}': {exc.strerror or exc}; "
                f"install it in the package's environment or fix the command in {self.project.file}"
            ) from exc
        finally:
            self._untrack()
        if returncode != 0:
            raise PackageError(_failure_message(entry_point, command, returncode, tail))
        return RunResult(entry_point, command, returncode, time.monotonic() - started)

    def stop(self, grace: float = 5.0) -> int:
        """Stop every entry point running now (SIGTERM, then SIGKILL after ``grace`` s); return how many.

        Entry points run in their own sessions, so a signal to the caller never reaches them: a client
        shutting down must stop them itself, or a training run would outlive it.
        """
        with self._running_lock:
            running = list(self._running)
        for process in running:
            stop_group(process, grace)
        return len(running)

    def _track(self, process: subprocess.Popen[bytes]) -> None:
        with self._running_lock:
            self._running.add(process)

    def _untrack(self) -> None:
        with self._running_lock:
            self._running = {p for p in self._running if p.poll() is None}


def _failure_message(entry_point: str, command: list[str], returncode: int, tail: list[str]) -> str:
    how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
    message = f"entry point '{entry_point}' ({shlex.join(command)}) {how}"
    if not tail:
        return message + " and wrote nothing to stderr"
    return message + f"; last {len(tail)} lines of its stderr:\n" + "\n".join(tail)
