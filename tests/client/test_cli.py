"""`scaleout client start` as a real process: it serves, and SIGTERM ends it cleanly with exit code 0."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from click.testing import CliRunner

from scaleout.cli.main import cli
from tests.client.doubles import (
    WAIT,
    ApiDouble,
    CombinerDouble,
    assigned,
    make_package,
    next_item,
    start_combiner,
)
from tests.client.test_edge import free_port, run

SCALEOUT = str(Path(sys.executable).with_name("scaleout"))


def test_sigterm_cancels_the_task_stream_and_exits_0(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg")
    work = tmp_path / "work"

    async def scenario() -> None:
        double = CombinerDouble()
        server, port = await start_combiner(double)
        try:
            with ApiDouble([assigned(port)]) as api:
                process = await asyncio.create_subprocess_exec(
                    SCALEOUT,
                    "client",
                    "start",
                    "--api-url",
                    api.url,
                    "--local-package",
                    str(package),
                    "--work-dir",
                    str(work),
                    "--heartbeat-interval",
                    "0.5",
                    stderr=asyncio.subprocess.PIPE,
                )
                waiter = asyncio.create_task(process.wait())
                hello = await next_item(double.streams_opened, waiter, "the client process's task stream")
                process.send_signal(signal.SIGTERM)
                closed = await asyncio.wait_for(double.streams_closed.get(), WAIT)
                code = await asyncio.wait_for(waiter, WAIT)
                log = (await process.stderr.read()).decode()
        finally:
            await server.stop(None)
        assert code == 0, log
        # No --client-id: the id was generated and kept in the work dir.
        assert hello.client_id == closed == (work / "client_id").read_text().strip()
        assert "stopped" in log

    run(scenario())


def test_unreachable_api_exits_1_with_a_message_after_the_assign_timeout(tmp_path: Path) -> None:
    make_package(tmp_path / "pkg")
    result = CliRunner().invoke(
        cli,
        [
            "client",
            "start",
            "--api-url",
            f"http://127.0.0.1:{free_port()}",
            "--local-package",
            str(tmp_path / "pkg"),
            "--work-dir",
            str(tmp_path / "work"),
            "--assign-timeout",
            "0.2",
        ],
    )
    assert result.exit_code == 1
    assert "no combiner assigned within 0.2 s" in result.output
    assert "unreachable" in result.output


def test_client_id_that_would_escape_the_work_root_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["client", "start", "--client-id", "../../etc", "--assign-timeout", "0"])
    assert result.exit_code == 1
    assert "invalid client id" in result.output


def test_an_enrollment_secret_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "enrollment" / "secret"
    result = CliRunner().invoke(cli, ["client", "start", "--enroll-secret-file", str(missing)])
    assert result.exit_code == 1
    assert f"cannot read the enrollment secret file {missing}: No such file or directory" in result.output
    empty = tmp_path / "empty"
    empty.write_text("\n")
    result = CliRunner().invoke(cli, ["client", "start", "--enroll-secret-file", str(empty)])
    assert result.exit_code == 1
    assert f"the enrollment secret file {empty} is empty" in result.output


def test_an_enrollment_secret_and_a_secret_file_are_not_both_taken(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("abc\n")
    args = ["client", "start", "--enroll-secret", "abc", "--enroll-secret-file", str(secret)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "give --enroll-secret or --enroll-secret-file, not both" in result.output
