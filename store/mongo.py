"""The production statestore: one MongoDB collection per entity, spoken to with pymongo.

Documents are the entities as JSON-compatible dicts with ``_id`` = the entity id and top-level
timestamps as BSON dates (the client runs ``tz_aware`` so they come back as aware UTC). Indexes on the
ids and on every field the other components filter and sort on are created at start-up; creating an
existing index is a no-op. Only the subset the test server implements is used (ARCHITECTURE §6): plain
find/sort/skip/limit, ``$in``/``$gt``…, counts, ``find_one_and_update`` and upserts; no ``$graphLookup``
(the model trail is a stored ``ancestors`` list) and ``ping`` rather than ``server_info()``.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from scaleout.errors import NotFound
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
from scaleout.store.schema import (
    Condition,
    check_paging,
    check_sort,
    datetime_fields,
    normalize,
    parse_filters,
    plain,
    validate_changes,
)
from scaleout.store.statestore import (
    CredentialRecords,
    DuplicateId,
    Filters,
    ModelRecords,
    NodeRecords,
    PackageRecords,
    Page,
    Repository,
    SortOrder,
    Statestore,
)

T = TypeVar("T", bound=Entity)

# Secondary indexes per collection (``_id`` is always indexed); the same set as the SQLite backend's.
INDEXES: dict[str, list[tuple[str, ...]]] = {
    "sessions": [("status",), ("created_at",), ("name",)],
    "rounds": [("session_id", "index"), ("status",), ("created_at",)],
    "models": [
        ("session_id", "committed_at"),
        ("round_id",),
        ("parent_id",),
        ("committed_at",),
        ("name",),
        ("ancestors",),  # multikey: answers "descendants of X" with {"ancestors": X}
    ],
    "validations": [("model_id",), ("client_id",), ("session_id",), ("round_id",), ("created_at",)],
    "clients": [("combiner_id",), ("status",), ("last_seen",), ("name",)],
    "combiners": [("status",), ("last_seen",), ("name",)],
    "packages": [("active",), ("committed_at",), ("name",)],
    "events": [("session_id",), ("round_id",), ("client_id",), ("level",), ("timestamp",)],
    "credentials": [("kind",), ("client_id",), ("revoked_at",)],
}


def _key(field: str) -> str:
    return "_id" if field == "id" else field


class _MongoRepository(Repository[T], Generic[T]):
    def __init__(self, collection: Collection, entity: type[T]) -> None:
        self.entity = entity
        self._collection = collection
        self._datetimes = datetime_fields(entity)

    def create_indexes(self) -> None:
        for fields in INDEXES.get(self._collection.name, []):
            self._collection.create_index([(field, ASCENDING) for field in fields])

    # -- encoding -------------------------------------------------------------------------------

    def _encode(self, item: T, include: set[str] | None = None) -> dict[str, Any]:
        """The document for ``item`` (or just the ``include`` fields): JSON values, BSON dates."""
        doc = item.model_dump(mode="json", by_alias=True, include=include, exclude_computed_fields=True)
        for name in self._datetimes:
            if name in doc:
                doc[name] = getattr(item, name)
        if "id" in doc:
            doc["_id"] = doc.pop("id")
        return doc

    def _decode(self, doc: Mapping[str, Any]) -> T:
        data = dict(doc)
        data["id"] = data.pop("_id")
        return self.entity.model_validate(data)

    def _not_found(self, id: str) -> NotFound:
        return NotFound(f"{self.entity.__name__} {id!r} not found")

    @staticmethod
    def _query(conditions: list[Condition]) -> dict[str, Any]:
        query: dict[str, dict[str, Any]] = {}
        for cond in conditions:
            operators = query.setdefault(_key(cond.field), {})
            if cond.op in operators:  # one operator twice on a field (seen_since plus a filter): AND them
                return {"$and": [{_key(c.field): {c.op: _plain(c)}} for c in conditions]}
            operators[cond.op] = _plain(cond)
        return query

    # -- the Repository contract ----------------------------------------------------------------

    def add(self, item: T) -> T:
        item = normalize(item)
        try:
            self._collection.insert_one(self._encode(item))
        except DuplicateKeyError:
            raise DuplicateId(f"{self.entity.__name__} {item.id!r} already exists") from None
        return item

    def get(self, id: str) -> T:
        doc = self._collection.find_one({"_id": id})
        if doc is None:
            raise self._not_found(id)
        return self._decode(doc)

    def update(self, id: str, changes: Mapping[str, Any]) -> T:
        validated = validate_changes(self.entity, changes)
        if not validated:
            return self.get(id)
        doc = self._collection.find_one_and_update(
            {"_id": id}, self._set(validated), return_document=ReturnDocument.AFTER
        )
        if doc is None:
            raise self._not_found(id)
        return self._decode(doc)

    def compare_and_set(self, id: str, expected: Filters, changes: Mapping[str, Any]) -> T | None:
        # One find_one_and_update with the expectation in its query: atomic on a single document.
        validated = validate_changes(self.entity, changes)
        query = self._query([Condition("id", "$eq", id), *parse_filters(self.entity, expected)])
        if validated:
            doc = self._collection.find_one_and_update(
                query, self._set(validated), return_document=ReturnDocument.AFTER
            )
        else:  # MongoDB refuses an empty $set; a test without a change is a read
            doc = self._collection.find_one(query)
        if doc is not None:
            return self._decode(doc)
        if self._collection.find_one({"_id": id}, projection={"_id": 1}) is None:
            raise self._not_found(id)
        return None

    def _set(self, validated: dict[str, Any]) -> dict[str, Any]:
        partial = self.entity.model_construct(**validated)
        return {"$set": self._encode(partial, include=set(validated))}

    def upsert(self, item: T) -> T:
        item = normalize(item)
        self._collection.replace_one({"_id": item.id}, self._encode(item), upsert=True)
        return item

    def delete(self, id: str) -> None:
        if self._collection.delete_one({"_id": id}).deleted_count == 0:
            raise self._not_found(id)

    def _list(
        self,
        conditions: list[Condition],
        sort_key: str = "id",
        sort_order: SortOrder = "asc",
        limit: int | None = None,
        skip: int = 0,
    ) -> Page[T]:
        check_sort(self.entity, sort_key, sort_order)
        check_paging(limit, skip)
        query = self._query(conditions)
        direction = ASCENDING if sort_order == "asc" else DESCENDING
        total = self._collection.count_documents(query)
        if limit == 0:  # pymongo reads limit(0) as "no limit"
            return Page([], total)
        cursor = self._collection.find(query).sort([(_key(sort_key), direction), ("_id", direction)])
        cursor = cursor.skip(skip)
        if limit is not None:
            cursor = cursor.limit(limit)
        return Page([self._decode(doc) for doc in cursor], total)

    def list(
        self,
        filters: Filters | None = None,
        sort_key: str = "id",
        sort_order: SortOrder = "asc",
        limit: int | None = None,
        skip: int = 0,
    ) -> Page[T]:
        return self._list(parse_filters(self.entity, filters), sort_key, sort_order, limit, skip)

    def count(self, filters: Filters | None = None) -> int:
        return self._collection.count_documents(self._query(parse_filters(self.entity, filters)))


def _plain(cond: Condition) -> Any:
    return [plain(v) for v in cond.value] if cond.op == "$in" else plain(cond.value)


class _MongoModels(_MongoRepository[Model], ModelRecords):
    def ancestors(self, id: str, limit: int | None = None, skip: int = 0) -> Page[Model]:
        trail = self.get(id).ancestors
        ids = trail[skip:] if limit is None else trail[skip : skip + limit]
        # One $in query for the page, put back in the stored order (parent first).
        found = {doc["_id"]: doc for doc in self._collection.find({"_id": {"$in": ids}})} if ids else {}
        return Page([self._decode(found[i]) for i in ids if i in found], len(trail))

    def descendants(self, id: str, limit: int | None = None, skip: int = 0) -> Page[Model]:
        count = self._collection.count_documents({"ancestors": id})
        if count == 0:
            if self._collection.find_one({"_id": id}, projection={"_id": 1}) is None:
                raise self._not_found(id)
            return Page([], 0)
        if limit == 0:  # to MongoDB a limit of 0 means none
            return Page([], count)
        cursor = (
            self._collection.find({"ancestors": id})
            .sort([("committed_at", ASCENDING), ("_id", ASCENDING)])
            .skip(skip)
            .limit(limit or 0)
        )
        return Page([self._decode(doc) for doc in cursor], count)

    def latest(self, session_id: str) -> Model | None:
        doc = self._collection.find_one(
            {"session_id": session_id}, sort=[("committed_at", DESCENDING), ("_id", DESCENDING)]
        )
        return None if doc is None else self._decode(doc)


class _MongoPackages(_MongoRepository[Package], PackageRecords):
    def active(self) -> Package:
        doc = self._collection.find_one(
            {"active": True}, sort=[("committed_at", DESCENDING), ("_id", DESCENDING)]
        )
        if doc is None:
            raise NotFound("no active Package: upload a compute package and set it active")
        return self._decode(doc)

    def set_active(self, id: str) -> Package:
        """Deactivate the others, then activate this one.

        Not one atomic step (a multi-document transaction needs a replica set): a reader between the two
        writes sees no active package, and two concurrent ``set_active`` calls can leave both active, in
        which case ``active()`` answers the most recently committed. Switching packages is an operator's
        action, so this window is accepted rather than requiring a replica set.
        """
        if self._collection.find_one({"_id": id}, projection={"_id": 1}) is None:
            raise self._not_found(id)
        self._collection.update_many({"active": True, "_id": {"$ne": id}}, {"$set": {"active": False}})
        doc = self._collection.find_one_and_update(
            {"_id": id}, {"$set": {"active": True}}, return_document=ReturnDocument.AFTER
        )
        if doc is None:  # deleted between the two writes
            raise self._not_found(id)
        return self._decode(doc)


class _MongoNodes(_MongoRepository[T], NodeRecords[T]):
    def seen_since(self, since: datetime, filters: Filters | None = None) -> list[T]:
        recent = parse_filters(self.entity, {"last_seen": {"$gte": since}})
        return self._list([*parse_filters(self.entity, filters), *recent]).items


class _MongoCredentials(_MongoRepository[Credential], CredentialRecords):
    def use_enrollment(self, id: str) -> Credential | None:
        # One conditional decrement: concurrent enrollments cannot take more uses than there are.
        doc = self._collection.find_one_and_update(
            {"_id": id, "uses_left": {"$gt": 0}, "revoked_at": None},
            {"$inc": {"uses_left": -1}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            return self._decode(doc)
        if self._collection.find_one({"_id": id}, projection={"_id": 1}) is None:
            raise self._not_found(id)
        return None


class MongoStatestore(Statestore):
    """Every repository in one MongoDB database."""

    def __init__(self, uri: str, database: str, **client_options: Any) -> None:
        """``client_options`` go to ``MongoClient`` (timeouts, TLS, ``event_listeners`` for monitoring)."""
        client_options.setdefault("serverSelectionTimeoutMS", 10_000)
        self._client: MongoClient = MongoClient(uri, tz_aware=True, tzinfo=UTC, **client_options)
        db = self._client[database]
        self.database = database
        self.sessions = _MongoRepository(db["sessions"], Session)
        self.rounds = _MongoRepository(db["rounds"], Round)
        self.models = _MongoModels(db["models"], Model)
        self.validations = _MongoRepository(db["validations"], Validation)
        self.clients = _MongoNodes(db["clients"], Client)
        self.combiners = _MongoNodes(db["combiners"], Combiner)
        self.packages = _MongoPackages(db["packages"], Package)
        self.events = _MongoRepository(db["events"], Event)
        self.credentials = _MongoCredentials(db["credentials"], Credential)
        for repository in (
            self.sessions,
            self.rounds,
            self.models,
            self.validations,
            self.clients,
            self.combiners,
            self.packages,
            self.events,
            self.credentials,
        ):
            repository.create_indexes()

    def ping(self) -> None:
        self._client.admin.command("ping")

    def close(self) -> None:
        self._client.close()
