"""The statestore interface: one repository per entity, the same contract on every backend.

Filters are Mongo-style documents, the common subset both backends implement:
``{"status": "Finished"}`` (equality), ``{"id": {"$in": [...]}}``, and ``$gt``/``$gte``/``$lt``/``$lte``
on numbers and timestamps, several operators on one field combined with AND. Any other operator,
or a field the entity does not have, raises ``InvalidFilter`` naming it.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from scaleout.errors import ScaleoutError
from scaleout.store.entities import (
    Client,
    Combiner,
    Credential,
    Entity,
    Event,
    Model,
    Package,
    Round,
    Session,
    Validation,
)

T = TypeVar("T", bound=Entity)

Filters = Mapping[str, Any]
SortOrder = Literal["asc", "desc"]
OPERATORS = frozenset({"$in", "$gt", "$gte", "$lt", "$lte"})


class InvalidFilter(ScaleoutError):
    """A filter names an unknown field or operator."""


class DuplicateId(ScaleoutError):
    """``add`` was given an id that is already stored."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing and the total number of matches across all pages."""

    items: list[T]
    count: int


class Repository(ABC, Generic[T]):
    """Storage of one entity type. Every method is safe to call from several threads."""

    entity: type[T]

    @abstractmethod
    def add(self, item: T) -> T:
        """Insert a new item; raises DuplicateId when its id exists."""

    @abstractmethod
    def get(self, id: str) -> T:
        """The item with this id; raises NotFound naming the entity and id."""

    @abstractmethod
    def update(self, id: str, changes: Mapping[str, Any]) -> T:
        """Set these top-level fields atomically and return the updated item; NotFound if missing."""

    @abstractmethod
    def compare_and_set(self, id: str, expected: Filters, changes: Mapping[str, Any]) -> T | None:
        """Set these fields only if the stored item matches ``expected`` (a filter), in one atomic
        step, and return the updated item; None when it does not match; NotFound if missing.

        What leases and fenced commits are built on: two writers that read the same state cannot
        both succeed in changing it.
        """

    @abstractmethod
    def upsert(self, item: T) -> T:
        """Insert or wholly replace the item with the same id."""

    @abstractmethod
    def delete(self, id: str) -> None:
        """Remove the item; raises NotFound if missing."""

    @abstractmethod
    def list(
        self,
        filters: Filters | None = None,
        sort_key: str = "id",
        sort_order: SortOrder = "asc",
        limit: int | None = None,
        skip: int = 0,
    ) -> Page[T]:
        """Matching items, sorted and paged; ``count`` is the total before paging."""

    @abstractmethod
    def count(self, filters: Filters | None = None) -> int:
        """How many items match."""


class ModelRecords(Repository[Model]):
    """Models, with the model trail."""

    @abstractmethod
    def ancestors(self, id: str, limit: int | None = None, skip: int = 0) -> Page[Model]:
        """The trail from this model's parent back to the root, parent first: ``limit`` generations
        from the ``skip``-th; ``count`` is the trail's length (two queries, however long the trail)."""

    @abstractmethod
    def descendants(self, id: str, limit: int | None = None, skip: int = 0) -> Page[Model]:
        """Every model derived from this one, oldest first, paged; ``count`` is all of them (two queries)."""

    @abstractmethod
    def latest(self, session_id: str) -> Model | None:
        """The last model committed in a session, or None."""


class PackageRecords(Repository[Package]):
    """Compute packages, exactly one of which may be active."""

    @abstractmethod
    def active(self) -> Package:
        """The active package; raises NotFound when none was set."""

    @abstractmethod
    def set_active(self, id: str) -> Package:
        """Make this package the only active one; NotFound if missing."""


class NodeRecords(Repository[T]):
    """Clients or combiners, which report when they were last seen."""

    @abstractmethod
    def seen_since(self, since: datetime, filters: Filters | None = None) -> list[T]:
        """Those whose last_seen is at or after ``since``, matching filters."""


class CredentialRecords(Repository[Credential]):
    """Client credentials and enrollment secrets (hashes only)."""

    @abstractmethod
    def use_enrollment(self, id: str) -> Credential | None:
        """Atomically take one use of an unrevoked enrollment secret: the record after, or None when it
        has no use left or is revoked (so N concurrent enrollments never exceed its uses); NotFound if
        missing."""


class Statestore(ABC):
    """Every repository of one backend. Open one with ``scaleout.store.open_statestore(uri)``."""

    sessions: Repository[Session]
    rounds: Repository[Round]
    models: ModelRecords
    validations: Repository[Validation]
    clients: NodeRecords[Client]
    combiners: NodeRecords[Combiner]
    packages: PackageRecords
    events: Repository[Event]
    credentials: CredentialRecords

    @abstractmethod
    def ping(self) -> None:
        """Raise if the backend cannot be reached."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the statestore is unusable afterwards."""
