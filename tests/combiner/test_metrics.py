"""The bounded reason label each of the combiner's rejection messages is counted under; the metrics
port's errors."""

import socket
from pathlib import Path

import pytest

from scaleout.combiner.clients import ClientRegistry
from scaleout.combiner.metrics import MetricsServer, rejection_reason
from scaleout.combiner.updates import UpdateRejected, parse_meta
from scaleout.store import open_statestore


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            "update for round r1 arrived while no round is running at combiner c (stale update); "
            "not averaged",
            "stale",
        ),
        ("update arrived after round r1 ended; not averaged", "stale"),
        ("client a was not selected for round r1", "not_selected"),
        ("client a left round r1; not averaged", "client_left"),
        ("duplicate update from client a for round r1; only its first report counts", "duplicate"),
        ("update answers task 'x', not the task y published to client a for round r1", "wrong_task"),
        ("update was trained from model 'm0', round r1 trains model m1", "wrong_model"),
        (
            "model_update_id 'u' is unknown: no upload with that id from client a (Upload the update ...)",
            "unknown_upload",
        ),
        ("array 0 has shape (5, 5), the global model's has (4, 3)", "arrays"),
        ("array 1 contains NaN or inf values", "arrays"),
        (
            "the update's distance from the global model (L2 norm 9) is above the session's "
            "max_update_norm of 1; not averaged",
            "norm",
        ),
        ("something new", "other"),
    ],
)
def test_each_rejection_message_has_its_reason(message: str, reason: str) -> None:
    assert rejection_reason(message) == reason


@pytest.mark.parametrize("meta", ['{"loss": 1}', "not json", '{"num_examples": 0}', "[]"])
def test_bad_metadata_is_counted_as_metadata(meta: str) -> None:
    with pytest.raises(UpdateRejected) as error:
        parse_meta(meta, 100)
    assert rejection_reason(str(error.value)) == "metadata"


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
