"""The committed stubs match scaleout.proto, and the client-facing messages match the official client's."""

import filecmp
from pathlib import Path

from scaleout.proto import scaleout_pb2
from scaleout.proto.generate import GENERATED, PROTO_DIR, generate

# Field numbers of the official Scaleout Edge client (scaleoututil==1.1.0) that must never move.
OFFICIAL_FIELDS = {
    "TaskRequest": {
        "client_id": 1,
        "model_id": 3,
        "data": 4,
        "correlation_id": 5,
        "timestamp": 6,
        "session_id": 8,
        "round_id": 10,
        "type": 11,
        "status": 12,
    },
    "ModelUpdate": {
        "client_id": 1,
        "model_id": 3,
        "model_update_id": 4,
        "correlation_id": 5,
        "timestamp": 6,
        "meta": 7,
        "config": 8,
        "round_id": 9,
        "session_id": 10,
    },
    "ModelValidation": {
        "client_id": 1,
        "model_id": 3,
        "data": 4,
        "correlation_id": 5,
        "timestamp": 6,
        "session_id": 8,
    },
    "Heartbeat": {"client_id": 1, "heartbeat_interval_ms": 4},
    "ClientAvailableMessage": {"client_id": 1, "data": 2, "timestamp": 3},
    "ModelRequest": {"model_id": 3},
    "FileChunk": {"data": 1},
    "ModelResponse": {"status": 3, "message": 4},
    "Status": {"client_id": 1, "status": 2, "log_level": 3, "timestamp": 6, "type": 7},
}


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    generate(tmp_path)
    stale = [name for name in GENERATED if not filecmp.cmp(tmp_path / name, PROTO_DIR / name, shallow=False)]
    assert not stale, f"stubs out of date with scaleout.proto: {stale}; run `make proto`"


def test_client_facing_field_numbers_match_the_official_client() -> None:
    for message, fields in OFFICIAL_FIELDS.items():
        descriptor = scaleout_pb2.DESCRIPTOR.message_types_by_name[message]
        actual = {f.name: f.number for f in descriptor.fields}
        assert actual == fields, message


def test_services_keep_official_names() -> None:
    services = scaleout_pb2.DESCRIPTOR.services_by_name
    assert {"CombinerClient", "ModelService", "Control"} <= set(services)
    assert {"TaskStream", "SendModelUpdate", "SendModelValidation", "SendHeartbeat", "SendStatus"} <= {
        m.name for m in services["CombinerClient"].methods
    }
