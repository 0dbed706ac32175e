"""The S3 test server fails loudly: a server that cannot start is an error with its output, not a skip."""

import socket

import pytest

from tests.fixtures.s3_server import S3ServerDidNotStart, start_s3_server


def test_a_server_that_cannot_bind_its_port_fails_with_its_output() -> None:
    with socket.socket() as occupied:
        occupied.bind(("127.0.0.1", 0))
        port = occupied.getsockname()[1]
        with pytest.raises(S3ServerDidNotStart) as raised:
            start_s3_server(port)
    message = str(raised.value)
    assert message.startswith(f"moto S3 server on 127.0.0.1:{port} exited with status ")
    assert "Address already in use" in message
