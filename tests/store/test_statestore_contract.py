"""The statestore contract: every backend (SQLite file, SQLite in memory, MongoDB) passes the same tests.

The MongoDB backend talks to a real server over TCP (mongoeco from tests/fixtures/mongo_server.py, or
SCALEOUT_TEST_MONGO_URI). Timestamps in these tests are whole milliseconds, the precision every backend
keeps, so stored records can be compared for exact equality.
"""

import json
import multiprocessing
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pymongo import monitoring

from scaleout.errors import NotFound
from scaleout.store import open_statestore
from scaleout.store.entities import (
    Client,
    ClientRoundResult,
    Combiner,
    CombinerRoundResult,
    Credential,
    CredentialKind,
    Entity,
    Event,
    EventLevel,
    Model,
    NodeStatus,
    Package,
    RejectedUpdate,
    Round,
    RoundStatus,
    Session,
    SessionConfig,
    SessionStatus,
    Validation,
)
from scaleout.store.mongo import MongoStatestore
from scaleout.store.sqlite import SCHEMA_VERSION, SQLiteStatestore
from scaleout.store.statestore import DuplicateId, InvalidFilter, Page, Statestore

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- backends ------------------------------------------------------------------------------------


@dataclass
class QueryCounter:
    """Counts the reads a backend sends: SELECTs on SQLite, find/aggregate/count commands on MongoDB."""

    reads: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sql(self, statement: str) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            with self.lock:
                self.reads += 1


class _MongoReads(monitoring.CommandListener):
    def __init__(self, counter: QueryCounter) -> None:
        self.counter = counter

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("find", "getMore", "aggregate", "count"):
            with self.counter.lock:
                self.counter.reads += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@dataclass
class Backend:
    name: str
    store: Statestore
    queries: QueryCounter


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "mongodb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    counter = QueryCounter()
    if request.param == "sqlite-file":
        store: Statestore = SQLiteStatestore(tmp_path / "state.db", trace=counter.sql)
    elif request.param == "sqlite-memory":
        store = SQLiteStatestore(":memory:", trace=counter.sql)
    else:
        uri = request.getfixturevalue("mongo_uri")
        database = request.getfixturevalue("mongo_database")
        store = MongoStatestore(uri, database, event_listeners=[_MongoReads(counter)])
    yield Backend(request.param, store, counter)
    store.close()


@pytest.fixture
def store(backend: Backend) -> Statestore:
    return backend.store


# -- one sample of each entity, with every field set ---------------------------------------------


def sample_session() -> Session:
    config = SessionConfig(
        rounds=7,
        round_timeout=30.5,
        min_clients=2,
        requested_clients=3,
        aggregator="fedadam",
        aggregator_kwargs={"server_lr": 0.5},
        validate=False,
        client_settings={"epochs": 2, "batch": [32, 64]},
    )
    return Session(
        name="s", status=SessionStatus.STARTED, config=config, seed_model_id="seed", created_at=at(0)
    )


def sample_round() -> Round:
    return Round(
        session_id="sess",
        index=3,
        status=RoundStatus.FINISHED,
        parent_model_id="m2",
        model_id="m3",
        combiners=[CombinerRoundResult(combiner_id="c1", model_id="m3", num_examples=300, seconds=1.25)],
        clients=[
            ClientRoundResult(
                client_id="a", combiner_id="c1", num_examples=100, train_seconds=0.5, meta={"k": 1}
            ),
            ClientRoundResult(client_id="b", combiner_id="c1", num_examples=200),
        ],
        rejected=[RejectedUpdate(client_id="x", reason="NaN in layer 0", combiner_id="c1")],
        created_at=at(1),
        started_at=at(2),
        finished_at=at(3.5),
        optimizer_state_id="model.fedadam.state",
        epsilon=1.25,
        dp_sampling_rate=0.5,
    )


def sample_model() -> Model:
    return Model(
        parent_id="p",
        ancestors=["p", "root"],
        session_id="sess",
        round_id="r",
        name="m",
        size=123_456_789,
        sha256="ab" * 32,
        committed_at=at(4),
        optimizer_state_id="model.fedadam.state",
    )


def sample_validation() -> Validation:
    metrics = {"accuracy": 0.875, "loss": 0.25, "per_class": [0.5, 1.0], "nested": {"n": 3}}
    return Validation(
        model_id="m", client_id="c", session_id="s", round_id="r", metrics=metrics, created_at=at(5)
    )


def sample_client() -> Client:
    return Client(
        name="edge-1",
        combiner_id="comb",
        status=NodeStatus.ONLINE,
        last_seen=at(6),
        package_checksum="cc",
        created_at=at(6),
    )


def sample_combiner() -> Combiner:
    return Combiner(name="comb", address="10.0.0.1", port=12080, last_seen=at(7), client_count=12)


def sample_package() -> Package:
    return Package(name="mnist", file_name="p.tgz", sha256="dd", size=42, description="d", committed_at=at(8))


def sample_event() -> Event:
    return Event(
        level=EventLevel.WARNING,
        type="round",
        message="slow client",
        session_id="s",
        round_id="r",
        client_id="c",
        combiner_id="comb",
        timestamp=at(9),
    )


def sample_credential() -> Credential:
    return Credential(
        kind=CredentialKind.CLIENT,
        name="hospital-a",
        client_id="c",
        token_hash="ab" * 32,
        created_at=at(10),
        enrollment_id="e",
    )


SAMPLES: dict[str, Callable[[], Entity]] = {
    "sessions": sample_session,
    "rounds": sample_round,
    "models": sample_model,
    "validations": sample_validation,
    "clients": sample_client,
    "combiners": sample_combiner,
    "packages": sample_package,
    "events": sample_event,
    "credentials": sample_credential,
}
ENTITY_NAMES = {
    "sessions": "Session",
    "rounds": "Round",
    "models": "Model",
    "validations": "Validation",
    "clients": "Client",
    "combiners": "Combiner",
    "packages": "Package",
    "events": "Event",
    "credentials": "Credential",
}
entities = pytest.mark.parametrize("repo", list(SAMPLES))


# -- CRUD ----------------------------------------------------------------------------------------


@entities
def test_added_item_reads_back_identical(store: Statestore, repo: str) -> None:
    item = SAMPLES[repo]()
    assert getattr(store, repo).add(item) == item
    assert getattr(store, repo).get(item.id) == item
    assert getattr(store, repo).get(item.id).model_dump(by_alias=True) == item.model_dump(by_alias=True)


@entities
def test_get_of_missing_id_names_entity_and_id(store: Statestore, repo: str) -> None:
    with pytest.raises(NotFound) as raised:
        getattr(store, repo).get("no-such-id")
    assert str(raised.value) == f"{ENTITY_NAMES[repo]} 'no-such-id' not found"


@entities
def test_adding_an_existing_id_raises_duplicate_id(store: Statestore, repo: str) -> None:
    item = getattr(store, repo).add(SAMPLES[repo]())
    with pytest.raises(DuplicateId) as raised:
        getattr(store, repo).add(
            item.model_copy(update={"name": "other"} if "name" in type(item).model_fields else {})
        )
    assert str(raised.value) == f"{ENTITY_NAMES[repo]} {item.id!r} already exists"
    assert getattr(store, repo).get(item.id) == item


@entities
def test_delete_removes_the_item_and_a_second_delete_is_not_found(store: Statestore, repo: str) -> None:
    repository = getattr(store, repo)
    keep, gone = repository.add(SAMPLES[repo]()), repository.add(SAMPLES[repo]())
    repository.delete(gone.id)
    with pytest.raises(NotFound, match=f"^{ENTITY_NAMES[repo]} '{gone.id}' not found$"):
        repository.get(gone.id)
    with pytest.raises(NotFound, match=f"^{ENTITY_NAMES[repo]} '{gone.id}' not found$"):
        repository.delete(gone.id)
    assert repository.list().items == [keep]


@entities
def test_upsert_inserts_then_wholly_replaces(store: Statestore, repo: str) -> None:
    repository = getattr(store, repo)
    item = SAMPLES[repo]()
    assert repository.upsert(item) == item
    replacement = type(item).model_validate({**SAMPLES[repo]().model_dump(), "id": item.id})
    replacement = replacement.model_copy(
        update={"session_id": "other"} if "session_id" in type(item).model_fields else {}
    )
    assert repository.upsert(replacement) == replacement
    assert repository.get(item.id) == replacement
    assert repository.count() == 1


def test_update_sets_fields_and_returns_the_stored_item(store: Statestore) -> None:
    round_ = store.rounds.add(sample_round())
    result = ClientRoundResult(client_id="c", num_examples=5)
    updated = store.rounds.update(
        round_.id,
        {"status": RoundStatus.FAILED, "error": "timeout", "clients": [result], "finished_at": at(60)},
    )
    expected = round_.model_copy(
        update={"status": RoundStatus.FAILED, "error": "timeout", "clients": [result], "finished_at": at(60)}
    )
    assert updated == expected
    assert store.rounds.get(round_.id) == expected
    # The indexed columns follow the document: the round is found by its new status, not its old one.
    assert store.rounds.list({"status": "Failed"}).items == [expected]
    assert store.rounds.count({"status": "Finished"}) == 0


def test_update_accepts_plain_values_and_validates_them(store: Statestore) -> None:
    session = store.sessions.add(sample_session())
    updated = store.sessions.update(
        session.id, {"status": "Finished", "finished_at": "2026-01-01T13:00:00.250+01:00", "rounds_done": 7}
    )
    assert updated.status is SessionStatus.FINISHED
    assert updated.finished_at == datetime(2026, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    assert store.sessions.get(session.id) == updated
    with pytest.raises(ValidationError):
        store.sessions.update(session.id, {"rounds_done": "many"})
    with pytest.raises(ValidationError):
        store.rounds.update(store.rounds.add(sample_round()).id, {"index": -1})


def test_update_of_missing_id_unknown_field_or_id_is_rejected(store: Statestore) -> None:
    session = store.sessions.add(sample_session())
    with pytest.raises(NotFound, match=r"^Session 'nope' not found$"):
        store.sessions.update("nope", {"rounds_done": 1})
    with pytest.raises(InvalidFilter, match=r"^Session has no field 'colour'"):
        store.sessions.update(session.id, {"colour": "red"})
    with pytest.raises(InvalidFilter, match=r"^Session ids cannot be changed"):
        store.sessions.update(session.id, {"id": "other"})
    assert store.sessions.get(session.id) == session


def test_compare_and_set_writes_only_when_the_stored_item_matches(store: Statestore) -> None:
    session = store.sessions.add(sample_session())
    lease = {"lease_owner": "api-a", "lease_expires": at(30)}

    taken = store.sessions.compare_and_set(session.id, {"lease_owner": None}, lease)

    assert taken == session.model_copy(update=lease)
    assert store.sessions.get(session.id) == taken
    # A second taker that read the free lease loses: the stored item no longer matches.
    assert store.sessions.compare_and_set(session.id, {"lease_owner": None}, {"lease_owner": "api-b"}) is None
    assert store.sessions.get(session.id) == taken
    # Expectations combine with AND and take the filter operators, timestamps included.
    expired = {"lease_owner": "api-a", "lease_expires": {"$lt": at(31)}, "rounds_done": 0}
    renewed = store.sessions.compare_and_set(session.id, expired, {"lease_owner": "api-b", "resumed": 1})
    assert (renewed.lease_owner, renewed.lease_expires, renewed.resumed) == ("api-b", at(30), 1)
    assert (
        store.sessions.compare_and_set(session.id, {"lease_expires": {"$gt": at(30)}}, {"resumed": 2}) is None
    )
    # A lease as read (owner and expiry to the millisecond) is what a taker expects to replace.
    as_read = store.sessions.get(session.id)
    expected = {"lease_owner": as_read.lease_owner, "lease_expires": as_read.lease_expires}
    assert store.sessions.compare_and_set(
        session.id, expected, {"lease_expires": at(40)}
    ).lease_expires == at(40)
    assert store.sessions.compare_and_set(session.id, expected, {"lease_expires": at(50)}) is None
    # The indexed columns follow the document.
    assert store.sessions.count({"lease_owner": "api-b"}) == 1
    assert store.sessions.compare_and_set(session.id, {"resumed": 1}, {}) == store.sessions.get(session.id)


def test_compare_and_set_of_missing_id_or_bad_expectation_is_rejected(store: Statestore) -> None:
    session = store.sessions.add(sample_session())
    with pytest.raises(NotFound, match=r"^Session 'nope' not found$"):
        store.sessions.compare_and_set("nope", {"lease_owner": None}, {"lease_owner": "a"})
    with pytest.raises(InvalidFilter, match=r"^Session has no field 'colour'"):
        store.sessions.compare_and_set(session.id, {"colour": "red"}, {"lease_owner": "a"})
    with pytest.raises(InvalidFilter, match=r"^Session has no field 'colour'"):
        store.sessions.compare_and_set(session.id, {"lease_owner": None}, {"colour": "red"})
    assert store.sessions.get(session.id) == session


def test_compare_and_set_lets_exactly_one_of_eight_racing_threads_win(store: Statestore) -> None:
    session = store.sessions.add(sample_session())
    barrier = threading.Barrier(8)
    winners: list[str] = []
    errors: list[BaseException] = []

    def take(owner: str) -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(20):  # each thread keeps trying to take a lease it saw free
                if store.sessions.compare_and_set(session.id, {"lease_owner": None}, {"lease_owner": owner}):
                    winners.append(owner)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=take, args=(f"api-{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(winners) == 1
    assert store.sessions.get(session.id).lease_owner == winners[0]


def test_timestamps_are_stored_as_utc_to_the_millisecond(store: Statestore) -> None:
    cest = timezone(timedelta(hours=2))
    event = store.events.add(
        Event(message="m", timestamp=datetime(2026, 6, 1, 14, 30, 0, 123_456, tzinfo=cest))
    )
    stored = store.events.get(event.id)
    assert stored.timestamp == datetime(2026, 6, 1, 12, 30, 0, 123_000, tzinfo=UTC)
    assert stored.timestamp.utcoffset() == timedelta(0)
    assert event == stored  # add returns what a later get reads


def test_session_config_round_trips_with_the_validate_alias(store: Statestore) -> None:
    session = store.sessions.add(
        Session(config=SessionConfig.model_validate({"validate": False, "rounds": 3}))
    )
    stored = store.sessions.get(session.id)
    assert stored.config.validate_models is False
    assert stored.config.rounds == 3
    assert stored.model_dump(by_alias=True)["config"]["validate"] is False
    assert stored.config == SessionConfig(validate=False, rounds=3)


# -- filters, sorting, paging, counts --------------------------------------------------------------


@pytest.fixture
def rounds(store: Statestore) -> list[Round]:
    """12 rounds of session "a" (index 0..11, created a second apart) and 3 of session "b"."""
    statuses = [RoundStatus.FINISHED, RoundStatus.FAILED, RoundStatus.RUNNING]
    made = [
        Round(
            session_id="a",
            index=i,
            status=statuses[i % 3],
            created_at=at(i),
            model_id=None if i % 4 else f"m{i}",
        )
        for i in range(12)
    ]
    made += [
        Round(session_id="b", index=i, status=RoundStatus.PENDING, created_at=at(100 + i)) for i in range(3)
    ]
    return [store.rounds.add(r) for r in made]


def ids(items: list[Entity]) -> list[str]:
    return [item.id for item in items]


def test_equality_and_in_filters(store: Statestore, rounds: list[Round]) -> None:
    a = rounds[:12]
    assert store.rounds.list({"session_id": "b"}).items == rounds[12:]
    assert store.rounds.list({"status": RoundStatus.FAILED}).items == [a[1], a[4], a[7], a[10]]
    assert store.rounds.list({"status": "Failed", "session_id": "a"}).items == [a[1], a[4], a[7], a[10]]
    assert store.rounds.list({"status": {"$in": ["Running", "Pending"]}}).count == 4 + 3
    assert store.rounds.list({"id": {"$in": [a[5].id, a[2].id, "missing"]}}).items == [a[2], a[5]]
    assert store.rounds.list({"index": {"$in": []}}).items == []
    assert store.rounds.list({"model_id": "m8"}).items == [a[8]]
    # None matches a field that holds none; $in may include None.
    assert store.rounds.count({"model_id": None}) == 9 + 3
    assert store.rounds.list({"model_id": {"$in": [None, "m4"]}, "session_id": "a"}).items == [
        r for r in a if r.index % 4 or r.index == 4
    ]


def test_range_filters_on_integers(store: Statestore, rounds: list[Round]) -> None:
    a = rounds[:12]
    q = {"session_id": "a"}
    assert store.rounds.list({**q, "index": {"$gt": 9}}).items == [a[10], a[11]]
    assert store.rounds.list({**q, "index": {"$gte": 9}}).items == [a[9], a[10], a[11]]
    assert store.rounds.list({**q, "index": {"$lt": 2}}).items == [a[0], a[1]]
    assert store.rounds.list({**q, "index": {"$lte": 2}}).items == [a[0], a[1], a[2]]
    # Numbers compare as numbers: 10 and 11 are above 9, not below "9".
    assert store.rounds.list({**q, "index": {"$gte": 2, "$lt": 10}}).items == a[2:10]
    assert (
        store.rounds.list({"index": {"$gte": 1, "$lte": 2}, "status": {"$in": ["Pending"]}}).items
        == rounds[13:]
    )


def test_range_filters_on_timestamps(store: Statestore, rounds: list[Round]) -> None:
    a = rounds[:12]
    assert store.rounds.list({"created_at": {"$gt": at(9)}, "session_id": "a"}).items == [a[10], a[11]]
    assert store.rounds.list({"created_at": {"$gte": at(3), "$lt": at(6)}}).items == a[3:6]
    assert store.rounds.list({"created_at": {"$lte": at(1)}}).items == a[:2]
    assert store.rounds.list({"created_at": at(7)}).items == [a[7]]
    # Another zone and an ISO string mean the same instant.
    berlin = timezone(timedelta(hours=1))
    assert (
        store.rounds.list({"created_at": {"$gte": (T0 + timedelta(seconds=100)).astimezone(berlin)}}).count
        == 3
    )
    assert store.rounds.list({"created_at": {"$lt": "2026-01-01T12:00:02Z"}}).items == a[:2]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"colour": "red"}, "Round has no field 'colour' (in filter)"),
        ({"config": {"rounds": 3}}, "Round cannot filter or sort on 'config' (in filter)"),
        ({"index": {"$ne": 3}}, "unknown filter operator '$ne' on Round.index"),
        ({"index": {"$regex": "1"}}, "unknown filter operator '$regex' on Round.index"),
        ({"index": {"$in": 3}}, "$in on Round.index needs a list, got 3"),
        ({"index": {"$gt": None}}, "$gt on Round.index needs a value, got None"),
        ({"index": "three"}, "filter value 'three' for Round.index"),
        ({"created_at": {"$gt": "yesterday"}}, "filter value 'yesterday' for Round.created_at"),
    ],
)
def test_invalid_filters_name_the_problem(store: Statestore, filters: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidFilter) as raised:
        store.rounds.list(filters)
    assert str(raised.value).startswith(message)
    with pytest.raises(InvalidFilter):
        store.rounds.count(filters)


def test_invalid_sort_and_paging_are_rejected(store: Statestore) -> None:
    with pytest.raises(InvalidFilter, match=r"^Round has no field 'colour' \(in sort_key\)"):
        store.rounds.list(sort_key="colour")
    with pytest.raises(InvalidFilter, match=r"^sort_order must be 'asc' or 'desc', got 'up'"):
        store.rounds.list(sort_order="up")  # type: ignore[arg-type]
    with pytest.raises(InvalidFilter, match=r"^skip must be >= 0, got -1"):
        store.rounds.list(skip=-1)


def test_sorting_ascending_and_descending_on_several_keys(store: Statestore, rounds: list[Round]) -> None:
    a = rounds[:12]
    assert store.rounds.list({"session_id": "a"}, sort_key="index").items == a
    assert store.rounds.list({"session_id": "a"}, sort_key="index", sort_order="desc").items == a[::-1]
    assert store.rounds.list(sort_key="created_at", sort_order="desc").items == rounds[::-1]
    # Ties on the sort key are broken by id in the same direction, so pages are stable.
    by_status = store.rounds.list({"session_id": "a"}, sort_key="status").items
    expected = sorted(a, key=lambda r: (r.status.value, r.id))
    assert by_status == expected
    by_status_desc = store.rounds.list({"session_id": "a"}, sort_key="status", sort_order="desc").items
    assert by_status_desc == expected[::-1]
    clients = [store.clients.add(Client(name=n, last_seen=at(i))) for i, n in enumerate(["b", "c", "a"])]
    assert [c.name for c in store.clients.list(sort_key="name").items] == ["a", "b", "c"]
    assert store.clients.list(sort_key="last_seen", sort_order="desc").items == clients[::-1]


def test_paging_returns_the_slice_and_the_total(store: Statestore, rounds: list[Round]) -> None:
    a = rounds[:12]
    page = store.rounds.list({"session_id": "a"}, sort_key="index", limit=5, skip=0)
    assert (page.items, page.count) == (a[:5], 12)
    page = store.rounds.list({"session_id": "a"}, sort_key="index", limit=5, skip=10)
    assert (page.items, page.count) == (a[10:], 12)
    page = store.rounds.list({"session_id": "a"}, sort_key="index", sort_order="desc", limit=3, skip=1)
    assert (page.items, page.count) == ([a[10], a[9], a[8]], 12)
    assert store.rounds.list({"session_id": "a"}, skip=20).items == []
    assert store.rounds.list({"session_id": "a"}, skip=20).count == 12
    assert store.rounds.list(limit=0).items == []
    assert store.rounds.list(limit=0).count == 15
    assert store.rounds.list(skip=3).items == rounds[3:]


def test_count_with_and_without_filters(store: Statestore, rounds: list[Round]) -> None:
    assert store.rounds.count() == 15
    assert store.rounds.count({"session_id": "a"}) == 12
    assert store.rounds.count({"session_id": "a", "index": {"$gte": 6}}) == 6
    assert store.rounds.count({"session_id": "none"}) == 0
    assert store.sessions.count() == 0


def test_round_ids_sort_in_creation_order(store: Statestore) -> None:
    # Created within the same few milliseconds and in index order; ids must keep that order.
    made = [Round(session_id="s", index=i) for i in range(25)]
    for round_ in reversed(made):  # stored in the opposite order, so storage order proves nothing
        store.rounds.add(round_)
    assert ids(store.rounds.list().items) == ids(made)
    assert ids(store.rounds.list(sort_key="id", sort_order="desc").items) == ids(made[::-1])
    assert [r.index for r in store.rounds.list(sort_key="index").items] == list(range(25))


# -- model trail, latest model, active package, nodes seen ------------------------------------------


def chain(store: Statestore, length: int, session_id: str = "s") -> list[Model]:
    """m0 <- m1 <- ... committed a second apart, each with its ancestors list."""
    models: list[Model] = []
    for i in range(length):
        parent = models[-1] if models else None
        models.append(
            store.models.add(
                Model(
                    parent_id=parent.id if parent else None,
                    ancestors=[parent.id, *parent.ancestors] if parent else [],
                    session_id=session_id,
                    name=f"m{i}",
                    committed_at=at(i),
                )
            )
        )
    return models


def test_model_trail_of_a_chain_with_a_branch(backend: Backend) -> None:
    store = backend.store
    m = chain(store, 5)
    branch = store.models.add(
        Model(
            parent_id=m[1].id, ancestors=[m[1].id, m[0].id], session_id="s", name="b2", committed_at=at(2.5)
        )
    )
    assert store.models.ancestors(m[4].id).items == [m[3], m[2], m[1], m[0]]
    assert store.models.ancestors(branch.id).items == [m[1], m[0]]
    assert store.models.ancestors(m[0].id).items == []
    assert store.models.descendants(m[1].id).items == [m[2], branch, m[3], m[4]]
    assert store.models.descendants(m[0].id).items == [m[1], m[2], branch, m[3], m[4]]
    assert store.models.descendants(m[3].id).items == [m[4]]
    assert store.models.descendants(branch.id).items == []
    with pytest.raises(NotFound, match=r"^Model 'nope' not found$"):
        store.models.ancestors("nope")
    with pytest.raises(NotFound, match=r"^Model 'nope' not found$"):
        store.models.descendants("nope")


def test_model_trail_takes_a_bounded_number_of_queries(backend: Backend) -> None:
    store = backend.store
    m = chain(store, 40)
    backend.queries.reads = 0
    assert store.models.ancestors(m[-1].id).items == m[-2::-1]
    assert 1 <= backend.queries.reads <= 2
    backend.queries.reads = 0
    assert store.models.descendants(m[0].id).items == m[1:]
    assert 1 <= backend.queries.reads <= 2


def test_model_trail_pages_in_two_queries_with_the_whole_count(backend: Backend) -> None:
    store = backend.store
    m = chain(store, 40)
    backend.queries.reads = 0
    page = store.models.ancestors(m[-1].id, limit=10, skip=5)
    assert (page.count, page.items) == (39, m[-7:-17:-1])
    assert 1 <= backend.queries.reads <= 2
    backend.queries.reads = 0
    page = store.models.descendants(m[0].id, limit=10, skip=30)
    assert (page.count, page.items) == (39, m[31:40])
    assert 1 <= backend.queries.reads <= 2
    assert store.models.ancestors(m[-1].id, limit=0) == Page([], 39)
    assert store.models.descendants(m[0].id, limit=0) == Page([], 39)
    assert store.models.descendants(m[0].id, skip=39) == Page([], 39)
    assert store.models.descendants(m[-1].id, limit=5) == Page([], 0)


def test_model_trail_skips_a_deleted_model(store: Statestore) -> None:
    m = chain(store, 4)
    store.models.delete(m[2].id)
    assert store.models.ancestors(m[3].id).items == [m[1], m[0]]
    assert store.models.descendants(m[0].id).items == [m[1], m[3]]


def test_latest_model_of_a_session(store: Statestore) -> None:
    assert store.models.latest("s") is None
    m = chain(store, 3, session_id="s")
    other = chain(store, 5, session_id="other")
    assert store.models.latest("s") == m[2]
    assert store.models.latest("other") == other[4]
    newest = store.models.add(Model(session_id="s", name="late", committed_at=at(50)))
    assert store.models.latest("s") == newest


def test_only_one_package_is_active(store: Statestore) -> None:
    with pytest.raises(NotFound, match=r"^no active Package"):
        store.packages.active()
    first, second = (store.packages.add(Package(name=n, committed_at=at(i))) for i, n in enumerate("ab"))
    assert store.packages.set_active(first.id) == first.model_copy(update={"active": True})
    assert store.packages.active() == first.model_copy(update={"active": True})
    assert store.packages.set_active(second.id) == second.model_copy(update={"active": True})
    assert store.packages.active() == second.model_copy(update={"active": True})
    assert store.packages.get(first.id).active is False
    assert store.packages.list({"active": True}).items == [second.model_copy(update={"active": True})]
    assert store.packages.count({"active": False}) == 1
    with pytest.raises(NotFound, match=r"^Package 'nope' not found$"):
        store.packages.set_active("nope")
    assert store.packages.active().id == second.id
    assert store.packages.set_active(second.id).active is True  # idempotent
    assert store.packages.count({"active": True}) == 1


@pytest.mark.parametrize("repo", ["clients", "combiners"])
def test_seen_since_returns_recent_nodes_matching_filters(store: Statestore, repo: str) -> None:
    repository = getattr(store, repo)
    kind = Client if repo == "clients" else Combiner
    old, recent, now = (
        repository.add(kind(name=n, last_seen=at(s), status=st))
        for n, s, st in [("old", -60, "offline"), ("recent", -10, "online"), ("now", 0, "offline")]
    )
    assert repository.seen_since(at(-30)) == [recent, now]
    assert repository.seen_since(at(-10)) == [recent, now]
    assert repository.seen_since(at(-9.999)) == [now]
    assert repository.seen_since(at(-120)) == [old, recent, now]
    assert repository.seen_since(at(-30), {"status": "online"}) == [recent]
    # A last_seen filter of its own narrows the window further.
    assert repository.seen_since(at(-30), {"last_seen": {"$gte": at(-5)}}) == [now]
    assert repository.seen_since(at(1)) == []


def enrollment(store: Statestore, uses: int) -> Credential:
    return store.credentials.add(
        Credential(kind=CredentialKind.ENROLLMENT, token_hash="cd" * 32, uses_left=uses, created_at=at(0))
    )


def test_an_enrollment_secret_is_used_up_after_its_uses(store: Statestore) -> None:
    secret = enrollment(store, 2)
    assert store.credentials.use_enrollment(secret.id) == secret.model_copy(update={"uses_left": 1})
    assert store.credentials.use_enrollment(secret.id) == secret.model_copy(update={"uses_left": 0})
    assert store.credentials.use_enrollment(secret.id) is None
    assert store.credentials.get(secret.id).uses_left == 0
    with pytest.raises(NotFound, match=r"^Credential 'nope' not found$"):
        store.credentials.use_enrollment("nope")


def test_a_revoked_enrollment_secret_has_no_use_left(store: Statestore) -> None:
    secret = enrollment(store, 5)
    store.credentials.update(secret.id, {"revoked_at": at(1)})
    assert store.credentials.use_enrollment(secret.id) is None
    assert store.credentials.get(secret.id).uses_left == 5


def test_concurrent_enrollments_never_take_more_uses_than_there_are(store: Statestore) -> None:
    secret = enrollment(store, 3)
    results: list[Credential | None] = []
    lock = threading.Lock()

    def take() -> None:
        result = store.credentials.use_enrollment(secret.id)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(r.uses_left for r in results if r is not None) == [0, 1, 2]
    assert results.count(None) == 5


def test_revoked_credentials_are_found_by_their_revocation_time(store: Statestore) -> None:
    kept, old, recent = (store.credentials.add(sample_credential()) for _ in range(3))
    old = store.credentials.update(old.id, {"revoked_at": at(-60)})
    recent = store.credentials.update(recent.id, {"revoked_at": at(5)})
    assert store.credentials.list({"revoked_at": {"$gte": at(0)}}).items == [recent]
    assert store.credentials.list({"revoked_at": {"$gte": at(-120)}}).items == [old, recent]
    assert store.credentials.list({"revoked_at": None}).items == [kept]


# -- concurrency ---------------------------------------------------------------------------------


def test_concurrent_writers_from_eight_threads(store: Statestore) -> None:
    errors: list[BaseException] = []
    written: list[list[str]] = [[] for _ in range(8)]

    def write(worker: int) -> None:
        try:
            for i in range(50):
                written[worker].append(store.rounds.add(Round(session_id=f"w{worker}", index=i)).id)
                if i % 10 == 0:
                    store.rounds.list({"session_id": f"w{worker}"}, limit=5)
        except BaseException as error:  # surfaced below, with the worker's traceback
            errors.append(error)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.rounds.count() == 400
    for worker in range(8):
        page = store.rounds.list({"session_id": f"w{worker}"}, sort_key="index")
        assert ids(page.items) == written[worker]
        assert [r.index for r in page.items] == list(range(50))


def _write_from_process(path: str, worker: int, count: int) -> None:
    """Run in a spawned process: insert rounds and update each one, through its own statestore."""
    store = SQLiteStatestore(path)
    try:
        for i in range(count):
            round_ = store.rounds.add(Round(session_id=f"p{worker}", index=i))
            store.rounds.update(round_.id, {"status": RoundStatus.FINISHED})
    finally:
        store.close()


def test_two_processes_write_one_sqlite_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    SQLiteStatestore(path).close()  # create the schema once, as `scaleout local` does before forking
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write_from_process, args=(path, w, 200)) for w in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    store = SQLiteStatestore(path)
    try:
        assert store.rounds.count() == 400
        assert store.rounds.count({"status": "Finished"}) == 400
        for worker in range(2):
            indexes = [
                r.index for r in store.rounds.list({"session_id": f"p{worker}"}, sort_key="index").items
            ]
            assert indexes == list(range(200))
    finally:
        store.close()


# -- backend specifics the contract relies on ------------------------------------------------------


def test_sqlite_file_keeps_data_and_schema_version_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SQLiteStatestore(path)
    session = store.sessions.add(sample_session())
    store.close()
    reopened = open_statestore(f"sqlite:///{path}")
    try:
        assert isinstance(reopened, SQLiteStatestore)
        assert reopened.sessions.get(session.id) == session
        assert reopened.schema_version() == SCHEMA_VERSION
    finally:
        reopened.close()


def test_open_statestore_by_uri(mongo_uri: str, mongo_database: str) -> None:
    memory = open_statestore("sqlite:///:memory:")
    assert isinstance(memory, SQLiteStatestore)
    memory.ping()
    memory.close()
    base = mongo_uri.split("?")[0].rstrip("/")
    mongo = open_statestore(f"{base}/{mongo_database}")
    try:
        assert isinstance(mongo, MongoStatestore)
        assert mongo.database == mongo_database
        mongo.ping()
    finally:
        mongo.close()


def test_a_closed_sqlite_statestore_refuses_use(tmp_path: Path) -> None:
    store = SQLiteStatestore(tmp_path / "state.db")
    store.close()
    with pytest.raises(Exception, match="is closed"):
        store.sessions.count()


def test_sqlite_file_is_in_wal_mode(tmp_path: Path) -> None:
    SQLiteStatestore(tmp_path / "state.db").close()
    with sqlite3.connect(tmp_path / "state.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_filters_a_field_without_a_column_through_its_document(tmp_path: Path) -> None:
    """A database made before a field had its column still filters and sorts on it (json_extract)."""
    path = tmp_path / "state.db"
    store = SQLiteStatestore(path)
    sessions = [store.sessions.add(Session(rounds_done=n, created_at=at(n))) for n in (3, 1, 2)]
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE sessions DROP COLUMN rounds_done")
        conn.execute("ALTER TABLE sessions DROP COLUMN started_at")
    store = SQLiteStatestore(path)
    try:
        assert store.sessions.list({"rounds_done": {"$gte": 2}}, sort_key="rounds_done").items == [
            sessions[2],
            sessions[0],
        ]
        assert store.sessions.count({"started_at": None}) == 3
        updated = store.sessions.update(sessions[1].id, {"rounds_done": 9, "started_at": at(30)})
        assert store.sessions.list({"started_at": {"$gt": at(29)}}).items == [updated]
    finally:
        store.close()


def test_sqlite_stores_fields_only_not_the_answers_computed_ids(tmp_path: Path) -> None:
    """model_id/session_id are computed for API answers (FEDn's clients read them), never stored."""
    path = tmp_path / "state.db"
    store = SQLiteStatestore(path)
    model, session = store.models.add(Model(name="m")), store.sessions.add(Session(name="s"))
    store.close()
    with sqlite3.connect(path) as conn:
        model_doc = json.loads(conn.execute("SELECT doc FROM models").fetchone()[0])
        session_doc = json.loads(conn.execute("SELECT doc FROM sessions").fetchone()[0])

    assert (model_doc["id"], session_doc["id"]) == (model.id, session.id)
    assert "model_id" not in model_doc and "session_id" not in session_doc
    assert model.model_dump(mode="json")["model_id"] == model.id
