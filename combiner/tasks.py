"""Building the TaskRequests a combiner publishes on its clients' task streams."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from scaleout.proto.scaleout_pb2 import TaskRequest

TRAIN = "Scaleout_ModelUpdate"
VALIDATE = "Scaleout_Validation"


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def make_task(
    kind: str, client_id: str, model_id: str, session_id: str, round_id: str, data: dict[str, Any]
) -> TaskRequest:
    """A task with a fresh correlation id; ``data`` reaches the entry point through IN-metadata."""
    return TaskRequest(
        type=kind,
        client_id=client_id,
        model_id=model_id,
        session_id=session_id,
        round_id=round_id,
        correlation_id=new_correlation_id(),
        timestamp=datetime.now(UTC).isoformat(),
        data=json.dumps(data),
    )
