"""Run a child process and stream its output, line by line, to the caller's log.

Lines are forwarded as they come rather than buffered, so a long training run shows progress and
a chatty one costs no memory; only a tail of stderr is kept, for the error message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

# A line sink receives ("stdout" | "stderr", line without its newline).
LineSink = Callable[[str, str], None]
PIPE_DRAIN_TIMEOUT = 5.0  # after exit; a grandchild still holding the pipe must not hang us


def log_line(stream: str, line: str) -> None:
    """The default sink: the child's output goes to this module's logger."""
    logger.info("%s: %s", stream, line)


def stream_process(
    command: list[str],
    env: Mapping[str, str] | None,
    cwd: Path | None,
    sink: LineSink,
    timeout: float | None = None,
    tail_lines: int = 20,
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> tuple[int, list[str]]:
    """Run ``command``, passing each output line to ``sink``; return (exit code, last stderr lines).

    Raises subprocess.TimeoutExpired when ``timeout`` passes, after killing the command's process
    group (the command runs in its own session so that its children die with it). ``started``
    receives the process as soon as it runs, so that an owner can stop it (see ``stop_group``).
    """
    tail: deque[str] = deque(maxlen=tail_lines)
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # so a timeout can kill the command's children too
    )
    if started is not None:
        started(process)
    readers = [
        threading.Thread(target=_pump, args=(process.stdout, "stdout", sink, None), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, "stderr", sink, tail), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        returncode = process.wait(timeout=timeout)
    except BaseException:  # the timeout, or Ctrl-C: the new session would not get the signal itself
        _kill_group(process)
        raise
    finally:
        for reader in readers:
            reader.join(timeout=PIPE_DRAIN_TIMEOUT)
    return returncode, list(tail)


def _pump(pipe: IO[bytes], stream: str, sink: LineSink, tail: deque[str] | None) -> None:
    with pipe:
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if tail is not None:
                tail.append(line)
            sink(stream, line)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def stop_group(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the command's process group, then SIGKILL it if it has not exited within ``grace`` s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill_group(process)
