"""`scaleout combiner health` asks Control.Info with a deadline: exit 0 when serving, 1 otherwise."""

import asyncio
import socket
import sys
from pathlib import Path

import pytest

from tests.combiner.driver import WAIT, running_combiner

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
SCALEOUT = str(Path(sys.executable).with_name("scaleout"))


async def _health(port: int) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        SCALEOUT,
        "combiner",
        "health",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--timeout",
        "5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 6 * WAIT)
    return process.returncode, output.decode()


async def test_health_exits_0_for_a_serving_combiner(tmp_path):
    async with running_combiner(tmp_path) as combiner:
        code, output = await _health(combiner.port)
    assert code == 0, output
    assert "combiner combiner-test" in output


async def test_health_exits_1_when_nothing_answers(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        code, output = await _health(port)
    assert code == 1
    assert "is not healthy" in output
