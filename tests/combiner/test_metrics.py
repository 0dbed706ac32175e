"""The metrics port's errors (the reason labels of rejections: tests/test_rejections.py)."""

import socket
from pathlib import Path

import pytest

from scaleout.combiner.clients import ClientRegistry
from scaleout.combiner.metrics import MetricsServer
from scaleout.store import open_statestore


def test_a_metrics_port_in_use_is_refused_naming_the_port_and_the_flag(tmp_path: Path) -> None:
    statestore = open_statestore(f"sqlite:///{tmp_path / 'statestore.db'}")
    registry = ClientRegistry(statestore, "combiner", 30.0, 5.0)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        expected = (
            rf"^combiner metrics cannot listen on 127\.0\.0\.1:{port}: .*; "
            r"is the port in use\? \(--metrics-port\)$"
        )
        with pytest.raises(OSError, match=expected):
            MetricsServer(registry, "127.0.0.1", port)
    statestore.close()
