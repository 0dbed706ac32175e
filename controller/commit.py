"""Commit a round's model to the trail: the bytes are in the repository before the record exists,
so a committed id always has bytes (ARCHITECTURE §4)."""

import hashlib
from collections.abc import Callable
from typing import Any

from scaleout.store.entities import Model, Session
from scaleout.store.repository import CHUNK_SIZE, ModelRepository
from scaleout.store.statestore import Statestore


def model_digest(repository: ModelRepository, model_id: str) -> tuple[int, str]:
    """Size and sha256 of a stored model, streamed in chunks (never whole in memory)."""
    digest = hashlib.sha256()
    size = 0
    with repository.open_model(model_id) as stream:
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def commit_round(
    statestore: Statestore,
    repository: ModelRepository,
    *,
    model_id: str,
    parent: Model,
    session: Session,
    round_id: str,
    index: int,
    round_changes: dict[str, Any],
    fence: Callable[[int], None],
    optimizer_state_id: str | None = None,
) -> Model:
    """Add the Model record, finish the Round, count the round on the Session, in that order.

    `fence(index)` runs right before the first write and raises (LeaseLost) when this controller no
    longer holds the session's lease: a controller that lost its session never commits a model.
    Blocking: run it through asyncio.to_thread, shielded, so a stop cannot cut it in half.
    """
    size, sha256 = model_digest(repository, model_id)
    fence(index)
    model = Model(
        id=model_id,
        parent_id=parent.id,
        ancestors=[parent.id, *parent.ancestors],
        session_id=session.id,
        round_id=round_id,
        name=f"{session.name or session.id} round {index + 1}",
        size=size,
        sha256=sha256,
        optimizer_state_id=optimizer_state_id,
    )
    statestore.models.add(model)
    # The round ends when its model is committed, after the digest (which reads the whole model).
    statestore.rounds.update(
        round_id, {**round_changes, "model_id": model_id, "finished_at": model.committed_at}
    )
    statestore.sessions.update(session.id, {"rounds_done": index + 1})
    return model
