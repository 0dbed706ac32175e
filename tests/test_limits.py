"""Servers raise their open-files limit to the hard one at start, and say when even that is too low.

Each case runs in its own process: the limit is the process's, and the test runner's must not change.
"""

import resource
import subprocess
import sys

import pytest

from scaleout.limits import EXPECTED_CLIENTS, RESERVED_FILES

RAISE = """
import logging, resource
from scaleout.limits import raise_open_files_limit
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
print(raise_open_files_limit("combiner c1"), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""
HARD = resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def run_with_limits(soft: int, hard: int) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return subprocess.run(
        [sys.executable, "-c", RAISE],
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.skipif(HARD < 2048, reason="the hard open-files limit here is below 2,048")
def test_the_soft_limit_is_raised_to_the_hard_one():
    done = run_with_limits(1024, 2048)

    assert done.stdout.split() == ["2048", "2048"]


@pytest.mark.skipif(HARD < 2048, reason="the hard open-files limit here is below 2,048")
def test_a_hard_limit_below_the_expected_clients_is_named_with_the_fix():
    done = run_with_limits(256, 2048)

    assert done.stderr == (
        f"WARNING the combiner c1 may open only 2048 files (RLIMIT_NOFILE, hard limit 2048), so it holds "
        f"about {2048 - RESERVED_FILES} connected clients: raise the hard limit to at least "
        f"{EXPECTED_CLIENTS + RESERVED_FILES} (ulimit -Hn in the shell that starts it, LimitNOFILE= in a "
        "systemd unit, --ulimit nofile=N:N for docker)\n"
    )


@pytest.mark.skipif(HARD < EXPECTED_CLIENTS + RESERVED_FILES, reason="the hard open-files limit here is low")
def test_a_hard_limit_for_the_expected_clients_raises_quietly():
    done = run_with_limits(1024, EXPECTED_CLIENTS + RESERVED_FILES)

    assert done.stdout.split() == [str(EXPECTED_CLIENTS + RESERVED_FILES)] * 2
    assert done.stderr == ""
