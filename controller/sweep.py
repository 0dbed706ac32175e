"""The repository sweep: delete objects no record names, once they are older than a grace period.

What it finds are the leftovers of crashes: a combiner's aggregate or a reduced model of a round
that never committed, an upload whose record was never written. A committed model and a package
have records, so they are never deleted; an object younger than the grace period may be a round in
flight or an upload between its bytes and its record (bytes are written first, ARCHITECTURE §4).
"""

import logging
from collections.abc import Iterable, Iterator
from datetime import timedelta
from itertools import islice

from scaleout.controller.server_step import state_owner
from scaleout.store.entities import utcnow
from scaleout.store.repository import Kind, ModelRepository, StoredObject
from scaleout.store.statestore import Repository, Statestore

log = logging.getLogger(__name__)

# Ids looked up per statestore query: bounded queries however many objects the repository holds.
BATCH = 500


def sweep_repository(statestore: Statestore, repository: ModelRepository, grace: float) -> list[StoredObject]:
    """Delete unnamed objects older than `grace` seconds and return them. Blocking: run in a thread."""
    cutoff = utcnow() - timedelta(seconds=grace)
    records: dict[Kind, Repository] = {"models": statestore.models, "packages": statestore.packages}
    deleted: list[StoredObject] = []
    for kind, named in records.items():
        old = (o for o in repository.list_objects(kind) if o.modified < cutoff)
        for batch in _batches(old, BATCH):
            owners = [state_owner(o.id) for o in batch]  # optimizer state goes with its model
            known = {r.id for r in named.list({"id": {"$in": owners}}).items}
            for stored, owner in zip(batch, owners, strict=True):
                if owner not in known and _delete(repository, stored):
                    deleted.append(stored)
    if deleted:
        total = sum(o.size for o in deleted)
        log.info("repository sweep: deleted %d object(s) no record names (%d bytes)", len(deleted), total)
    return deleted


def _delete(repository: ModelRepository, stored: StoredObject) -> bool:
    log.info(
        "repository sweep: deleting %s %s (%d bytes, modified %s)",
        stored.kind,
        stored.id,
        stored.size,
        stored.modified,
    )
    try:
        repository.delete(stored.kind, stored.id)
    except Exception:  # gone already, or the storage failed: the next sweep tries again
        log.warning("repository sweep: could not delete %s %s", stored.kind, stored.id, exc_info=True)
        return False
    return True


def _batches(items: Iterable[StoredObject], size: int) -> Iterator[list[StoredObject]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
