"""The embedded statestore: SQLite from the standard library, for `scaleout local` and one machine.

Each entity has a table holding its JSON document per row plus a column for every top-level scalar
field (ids, status, index, timestamps, ...), so filters and sorting run in SQL on indexed columns;
a field added to an entity after a database was created is still filterable through
``json_extract`` on the document. Timestamps are fixed-width UTC ISO text, so text order is time order.

Concurrency: WAL mode lets readers run beside one writer, ``busy_timeout`` makes writers from other
threads and processes wait instead of failing, each thread has its own connection, and every
read-modify-write runs in a ``BEGIN IMMEDIATE`` transaction. ``:memory:`` is one database per
connection, so there all threads share one connection behind a lock.
"""

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Generic, TypeVar

from scaleout.errors import NotFound, ScaleoutError
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
    format_datetime,
    normalize,
    parse_filters,
    scalar_fields,
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

SCHEMA_VERSION = 1
# version -> statements that migrate a database from version - 1; later issues add entries here.
MIGRATIONS: dict[int, list[str]] = {}

BUSY_TIMEOUT_MS = 30_000

# Secondary indexes per table, on the fields the controller, API and combiner filter and sort on.
INDEXES: dict[str, list[tuple[str, ...]]] = {
    "sessions": [("status",), ("created_at",), ("name",)],
    "rounds": [("session_id", "index"), ("status",), ("created_at",)],
    "models": [("session_id", "committed_at"), ("round_id",), ("parent_id",), ("committed_at",), ("name",)],
    "validations": [("model_id",), ("client_id",), ("session_id",), ("round_id",), ("created_at",)],
    "clients": [("combiner_id",), ("status",), ("last_seen",), ("name",)],
    "combiners": [("status",), ("last_seen",), ("name",)],
    "packages": [("active",), ("committed_at",), ("name",)],
    "events": [("session_id",), ("round_id",), ("client_id",), ("level",), ("timestamp",)],
    "credentials": [("kind",), ("client_id",), ("revoked_at",)],
}


def _q(name: str) -> str:
    """A quoted identifier: fields such as ``index`` are SQL keywords."""
    return '"' + name.replace('"', '""') + '"'


def _sql_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bool):
        return int(value)
    return value


def _column_type(kind: type) -> str:
    if issubclass(kind, bool | int):
        return "INTEGER"
    if issubclass(kind, float):
        return "REAL"
    return "TEXT"


class _Database:
    """Connections, locking and transactions for one SQLite file (or one in-memory database)."""

    def __init__(self, path: str, trace: Callable[[str], None] | None) -> None:
        self.path = path
        self._trace = trace
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        # One database per ":memory:" connection, so every thread must share one, serialised by a lock.
        self._shared = self._open() if path == ":memory:" else None
        self._shared_lock = threading.RLock()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe in WAL mode
        if self._trace is not None:
            conn.set_trace_callback(self._trace)
        with self._all_lock:
            self._all.append(conn)
        return conn

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise ScaleoutError(f"the SQLite statestore at {self.path!r} is closed")
        if self._shared is not None:
            with self._shared_lock:
                yield self._shared
            return
        # A connection must not cross a fork, so a child process opens its own.
        conn, pid = getattr(self._local, "conn", (None, None))
        if conn is None or pid != os.getpid():
            conn = self._open()
            self._local.conn = (conn, os.getpid())
        yield conn

    @contextmanager
    def transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """IMMEDIATE takes the write lock up front, so read-modify-write never deadlocks on upgrade."""
        with self.connection() as conn:
            conn.execute(f"BEGIN {mode}")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


class _SQLiteRepository(Repository[T], Generic[T]):
    def __init__(self, db: _Database, entity: type[T], table: str) -> None:
        self.entity = entity
        self._db = db
        self._table = table
        self._fields = scalar_fields(entity)
        self._datetimes = datetime_fields(entity)
        self._columns: list[str] = []

    # -- schema ---------------------------------------------------------------------------------

    def create_schema(self, conn: sqlite3.Connection) -> None:
        columns = ", ".join(
            f"{_q(name)} {_column_type(kind)}" for name, kind in self._fields.items() if name != "id"
        )
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_q(self._table)} "
            f"(id TEXT PRIMARY KEY NOT NULL, {columns}, doc TEXT NOT NULL)"
        )
        for fields in INDEXES.get(self._table, []):
            name = f"{self._table}_{'_'.join(fields)}"
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {_q(name)} ON {_q(self._table)} ({', '.join(map(_q, fields))})"
            )

    def load_columns(self, conn: sqlite3.Connection) -> None:
        """The columns this database has; fields without one are read from the document."""
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({_q(self._table)})")}
        self._columns = [name for name in self._fields if name in present]

    def _expr(self, field: str) -> str:
        if field in self._columns:
            return _q(field)
        return f"json_extract(doc, '$.{field}')"

    # -- encoding -------------------------------------------------------------------------------

    def _row(self, item: T) -> dict[str, Any]:
        """Column values and the JSON document (with fixed-width timestamps, for json_extract)."""
        doc = item.model_dump(mode="json", by_alias=True, exclude_computed_fields=True)
        for name in self._datetimes:
            if doc[name] is not None:
                doc[name] = format_datetime(getattr(item, name))
        row = {name: _sql_value(getattr(item, name)) for name in self._columns}
        row["doc"] = json.dumps(doc, separators=(",", ":"))
        return row

    def _insert_sql(self, row: dict[str, Any]) -> str:
        return (
            f"INSERT INTO {_q(self._table)} ({', '.join(map(_q, row))}) VALUES ({', '.join('?' * len(row))})"
        )

    def _decode(self, doc: str) -> T:
        return self.entity.model_validate_json(doc)

    def _not_found(self, id: str) -> NotFound:
        return NotFound(f"{self.entity.__name__} {id!r} not found")

    def _where(self, conditions: list[Condition]) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for cond in conditions:
            expr = self._expr(cond.field)
            if cond.op == "$eq":
                if cond.value is None:
                    clauses.append(f"{expr} IS NULL")
                else:
                    clauses.append(f"{expr} = ?")
                    params.append(_sql_value(cond.value))
            elif cond.op == "$in":
                values = [_sql_value(v) for v in cond.value if v is not None]
                parts = [f"{expr} IN ({', '.join('?' * len(values))})"] if values else []
                if any(v is None for v in cond.value):
                    parts.append(f"{expr} IS NULL")
                clauses.append("(" + " OR ".join(parts) + ")" if parts else "0")
                params.extend(values)
            else:
                sql_op = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[cond.op]
                clauses.append(f"{expr} {sql_op} ?")
                params.append(_sql_value(cond.value))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def _after_write(self, conn: sqlite3.Connection, item: T) -> None:
        """Keep side tables in step with a written row (the model trail)."""

    def _after_delete(self, conn: sqlite3.Connection, id: str) -> None:
        """Remove side-table rows of a deleted item."""

    # -- the Repository contract ----------------------------------------------------------------

    def add(self, item: T) -> T:
        item = normalize(item)
        row = self._row(item)
        try:
            with self._db.transaction() as conn:
                conn.execute(self._insert_sql(row), list(row.values()))
                self._after_write(conn, item)
        except sqlite3.IntegrityError as error:
            if "UNIQUE" not in str(error):
                raise
            raise DuplicateId(f"{self.entity.__name__} {item.id!r} already exists") from None
        return item

    def get(self, id: str) -> T:
        with self._db.connection() as conn:
            row = conn.execute(f"SELECT doc FROM {_q(self._table)} WHERE id = ?", (id,)).fetchone()
        if row is None:
            raise self._not_found(id)
        return self._decode(row[0])

    def update(self, id: str, changes: Mapping[str, Any]) -> T:
        item = self._update_where(id, [], changes)
        assert item is not None  # no conditions: only a missing id stops it, and that raised
        return item

    def compare_and_set(self, id: str, expected: Filters, changes: Mapping[str, Any]) -> T | None:
        return self._update_where(id, parse_filters(self.entity, expected), changes)

    def _update_where(self, id: str, conditions: list[Condition], changes: Mapping[str, Any]) -> T | None:
        """Read, test and write in one IMMEDIATE transaction: no other writer runs in between."""
        validated = validate_changes(self.entity, changes)
        where, params = self._where([Condition("id", "$eq", id), *conditions])
        with self._db.transaction() as conn:
            row = conn.execute(f"SELECT doc FROM {_q(self._table)}{where}", params).fetchone()
            if row is None:
                if conn.execute(f"SELECT 1 FROM {_q(self._table)} WHERE id = ?", (id,)).fetchone() is None:
                    raise self._not_found(id)
                return None
            item = normalize(self._decode(row[0]).model_copy(update=validated))
            values = {name: value for name, value in self._row(item).items() if name != "id"}
            assignments = ", ".join(f"{_q(name)} = ?" for name in values)
            conn.execute(f"UPDATE {_q(self._table)} SET {assignments} WHERE id = ?", [*values.values(), id])
            self._after_write(conn, item)
        return item

    def upsert(self, item: T) -> T:
        item = normalize(item)
        row = self._row(item)
        assignments = ", ".join(f"{_q(name)} = excluded.{_q(name)}" for name in row if name != "id")
        with self._db.transaction() as conn:
            conn.execute(
                f"{self._insert_sql(row)} ON CONFLICT(id) DO UPDATE SET {assignments}", list(row.values())
            )
            self._after_write(conn, item)
        return item

    def delete(self, id: str) -> None:
        with self._db.transaction() as conn:
            if conn.execute(f"DELETE FROM {_q(self._table)} WHERE id = ?", (id,)).rowcount == 0:
                raise self._not_found(id)
            self._after_delete(conn, id)

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
        where, params = self._where(conditions)
        direction = "ASC" if sort_order == "asc" else "DESC"
        order = f"{self._expr(sort_key)} {direction}, id {direction}"
        # A deferred transaction gives the page and its count one snapshot.
        with self._db.transaction("DEFERRED") as conn:
            rows = conn.execute(
                f"SELECT doc FROM {_q(self._table)}{where} ORDER BY {order} LIMIT ? OFFSET ?",
                [*params, -1 if limit is None else limit, skip],
            ).fetchall()
            total = conn.execute(f"SELECT COUNT(*) FROM {_q(self._table)}{where}", params).fetchone()[0]
        return Page([self._decode(row[0]) for row in rows], total)

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
        where, params = self._where(parse_filters(self.entity, filters))
        with self._db.connection() as conn:
            return conn.execute(f"SELECT COUNT(*) FROM {_q(self._table)}{where}", params).fetchone()[0]


class _SQLiteModels(_SQLiteRepository[Model], ModelRecords):
    """Models; a side table (model_id, ancestor_id) answers "descendants of X" with one indexed join."""

    def create_schema(self, conn: sqlite3.Connection) -> None:
        super().create_schema(conn)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS model_ancestors (model_id TEXT NOT NULL, ancestor_id TEXT NOT NULL, "
            "PRIMARY KEY (model_id, ancestor_id))"
        )
        conn.execute("CREATE INDEX IF NOT EXISTS model_ancestors_ancestor ON model_ancestors (ancestor_id)")

    def _after_write(self, conn: sqlite3.Connection, item: Model) -> None:
        conn.execute("DELETE FROM model_ancestors WHERE model_id = ?", (item.id,))
        conn.executemany(
            "INSERT OR IGNORE INTO model_ancestors (model_id, ancestor_id) VALUES (?, ?)",
            [(item.id, ancestor) for ancestor in item.ancestors],
        )

    def _after_delete(self, conn: sqlite3.Connection, id: str) -> None:
        conn.execute("DELETE FROM model_ancestors WHERE model_id = ?", (id,))

    def ancestors(self, id: str, limit: int | None = None, skip: int = 0) -> Page[Model]:
        trail = self.get(id).ancestors
        ids = trail[skip:] if limit is None else trail[skip : skip + limit]
        # One query for the page; json_each keeps the stored order (parent first).
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT m.doc FROM json_each(?) AS trail JOIN models AS m ON m.id = trail.value "
                "ORDER BY trail.key",
                (json.dumps(ids),),
            ).fetchall()
        return Page([self._decode(row[0]) for row in rows], len(trail))

    def descendants(self, id: str, limit: int | None = None, skip: int = 0) -> Page[Model]:
        with self._db.connection() as conn:
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM model_ancestors WHERE ancestor_id = ?", (id,)
            ).fetchone()
            if count == 0:
                self.get(id)  # NotFound for an unknown model; a leaf has no descendants
                return Page([], 0)
            rows = conn.execute(
                "SELECT m.doc FROM model_ancestors AS a JOIN models AS m ON m.id = a.model_id "
                "WHERE a.ancestor_id = ? ORDER BY m.committed_at, m.id LIMIT ? OFFSET ?",
                (id, -1 if limit is None else limit, skip),
            ).fetchall()
        return Page([self._decode(row[0]) for row in rows], count)

    def latest(self, session_id: str) -> Model | None:
        page = self._list([Condition("session_id", "$eq", session_id)], "committed_at", "desc", limit=1)
        return page.items[0] if page.items else None


class _SQLitePackages(_SQLiteRepository[Package], PackageRecords):
    def active(self) -> Package:
        page = self._list([Condition("active", "$eq", True)], "committed_at", "desc", limit=1)
        if not page.items:
            raise NotFound("no active Package: upload a compute package and set it active")
        return page.items[0]

    def set_active(self, id: str) -> Package:
        # One IMMEDIATE transaction: no reader ever sees two active packages, or none after a switch.
        with self._db.transaction() as conn:
            row = conn.execute("SELECT doc FROM packages WHERE id = ?", (id,)).fetchone()
            if row is None:
                raise self._not_found(id)
            conn.execute(
                "UPDATE packages SET active = 0, doc = json_set(doc, '$.active', json('false')) "
                "WHERE active = 1 AND id != ?",
                (id,),
            )
            item = self._decode(row[0]).model_copy(update={"active": True})
            conn.execute("UPDATE packages SET active = 1, doc = ? WHERE id = ?", (self._row(item)["doc"], id))
        return item


class _SQLiteNodes(_SQLiteRepository[T], NodeRecords[T]):
    def seen_since(self, since: datetime, filters: Filters | None = None) -> list[T]:
        recent = parse_filters(self.entity, {"last_seen": {"$gte": since}})
        return self._list([*parse_filters(self.entity, filters), *recent]).items


class _SQLiteCredentials(_SQLiteRepository[Credential], CredentialRecords):
    def use_enrollment(self, id: str) -> Credential | None:
        with self._db.transaction() as conn:  # IMMEDIATE: no two enrollments read the same count
            row = conn.execute("SELECT doc FROM credentials WHERE id = ?", (id,)).fetchone()
            if row is None:
                raise self._not_found(id)
            item = self._decode(row[0])
            if item.revoked_at is not None or not item.uses_left:
                return None
            item = item.model_copy(update={"uses_left": item.uses_left - 1})
            values = {name: value for name, value in self._row(item).items() if name != "id"}
            assignments = ", ".join(f"{_q(name)} = ?" for name in values)
            conn.execute(f"UPDATE credentials SET {assignments} WHERE id = ?", [*values.values(), id])
        return item


class SQLiteStatestore(Statestore):
    """Every repository in one SQLite database file (or ``":memory:"``)."""

    def __init__(self, path: str | os.PathLike[str], trace: Callable[[str], None] | None = None) -> None:
        """``trace`` receives every SQL statement run (debugging, and counting queries in tests)."""
        self.path = os.fspath(path)
        if self.path != ":memory:":  # SQLite creates the file but not its folder (e.g. ./.scaleout/)
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = _Database(self.path, trace)
        self.sessions = _SQLiteRepository(self._db, Session, "sessions")
        self.rounds = _SQLiteRepository(self._db, Round, "rounds")
        self.models = _SQLiteModels(self._db, Model, "models")
        self.validations = _SQLiteRepository(self._db, Validation, "validations")
        self.clients = _SQLiteNodes(self._db, Client, "clients")
        self.combiners = _SQLiteNodes(self._db, Combiner, "combiners")
        self.packages = _SQLitePackages(self._db, Package, "packages")
        self.events = _SQLiteRepository(self._db, Event, "events")
        self.credentials = _SQLiteCredentials(self._db, Credential, "credentials")
        self._repositories: list[_SQLiteRepository[Any]] = [
            self.sessions,
            self.rounds,
            self.models,
            self.validations,
            self.clients,
            self.combiners,
            self.packages,
            self.events,
            self.credentials,
        ]
        self._create_schema()

    def _create_schema(self) -> None:
        with self._db.transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            version = row[0]
            if version is not None and version > SCHEMA_VERSION:
                raise ScaleoutError(
                    f"{self.path!r} has statestore schema v{version}, newer than this scaleout-edge "
                    f"(v{SCHEMA_VERSION}); upgrade scaleout-edge to open it"
                )
            for repository in self._repositories:
                repository.create_schema(conn)
            if version is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            else:
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[step]:
                        conn.execute(statement)
                    conn.execute("UPDATE schema_version SET version = ?", (step,))
            for repository in self._repositories:
                repository.load_columns(conn)

    def schema_version(self) -> int:
        with self._db.connection() as conn:
            return conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]

    def ping(self) -> None:
        with self._db.connection() as conn:
            conn.execute("SELECT 1").fetchone()

    def close(self) -> None:
        self._db.close()
