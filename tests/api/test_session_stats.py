"""Async sessions through the API: APIClient.start_session stores the FedBuff config exactly, and
GET /sessions/{id}/stats computes the pace, staleness and rejections of the stored version records."""

from datetime import timedelta
from pathlib import Path

import pytest

from scaleout import APIClient
from scaleout.api.client import APIError
from scaleout.store.entities import ClientRoundResult, Round, Session, SessionConfig
from scaleoututil.helpers.helpers import get_helper
from tests.api.conftest import ApiServer
from tests.fixtures.async_session import T0, add_async_session


def test_stats_of_an_async_session_are_exact_from_its_version_records(server: ApiServer, api: APIClient):
    session_id = add_async_session(server.statestore)

    stats = api.get_session_stats(session_id)

    assert {k: v for k, v in stats.items() if k != "per_version"} == {
        "session_id": session_id,
        "mode": "async",
        "status": "Started",
        "versions": 3,  # the Running round is no version yet
        "target": 3,
        "seconds": 20.0,
        "versions_per_second": 0.15,
        "window": 10,
        "recent_versions_per_second": 0.15,
        "updates": 6,
        "updates_per_version": 2.0,
        "staleness": {"updates": 6, "counts": [3, 2, 1], "mean": pytest.approx(4 / 6), "max": 2},
        # every round's rejections, the running one's too, by kind
        "rejected": {"stale": 1, "timeout": 1, "update norm": 1},
    }
    keys = ("version", "seconds", "updates", "staleness_min", "staleness_mean", "staleness_max")
    assert [tuple(v[k] for k in keys) for v in stats["per_version"]] == [
        (1, 10.0, 2, 0, 0.0, 0),
        (2, 15.0, 2, 0, 0.5, 1),
        (3, 20.0, 2, 1, 1.5, 2),
    ]
    assert stats["per_version"][2]["committed_at"] == "2026-01-05T09:00:20Z"


def test_the_recent_rate_counts_the_last_window_versions_since_the_commit_before_them(
    server: ApiServer, api: APIClient
):
    session_id = add_async_session(server.statestore)

    # versions 2 and 3 since version 1's commit at 10 s: 2 versions in 10 s
    assert api.get_session_stats(session_id, window=2)["recent_versions_per_second"] == 0.2
    assert api.get_session_stats(session_id, window=1)["recent_versions_per_second"] == 0.2


def test_stats_of_a_sync_session_count_rounds_and_no_staleness(server: ApiServer, api: APIClient):
    store = server.statestore
    session = store.sessions.add(
        Session(config=SessionConfig(rounds=4), status="Finished", rounds_done=1, started_at=T0)
    )
    store.rounds.add(
        Round(
            session_id=session.id,
            index=0,
            status="Finished",
            clients=[ClientRoundResult(client_id="a", num_examples=5)],
            started_at=T0,
            finished_at=T0 + timedelta(seconds=4),
        )
    )

    stats = api.get_session_stats(session.id)

    assert (stats["mode"], stats["versions"], stats["target"]) == ("sync", 1, 4)
    assert stats["versions_per_second"] == 0.25
    assert stats["staleness"] == {"updates": 0, "counts": [], "mean": None, "max": None}
    assert stats["per_version"][0]["staleness_mean"] is None


def test_stats_of_an_unknown_session_is_404(api: APIClient):
    with pytest.raises(APIError) as error:
        api.get_session_stats("f" * 32)
    assert error.value.status_code == 404


def test_start_session_stores_the_async_config_exactly(server: ApiServer, api: APIClient, tmp_path: Path):
    api.set_active_model(get_helper("numpyhelper").save([[1.0, 2.0]], str(tmp_path / "seed.npz")))

    session_id = api.start_session(
        mode="async",
        buffer_size=4,
        max_concurrency=8,
        staleness="polynomial",
        staleness_exponent=0.75,
        max_staleness=5,
        max_versions=40,
        max_duration=600.0,
        server_lr=0.5,
        validate_every=3,
    )

    config = server.statestore.sessions.get(session_id).config
    assert config.model_dump(include=set(ASYNC_FIELDS) | {"buffer_size"}) == {
        "mode": "async",
        "buffer_size": 4,
        "max_concurrency": 8,
        "staleness": "polynomial",
        "staleness_exponent": 0.75,
        "max_staleness": 5,
        "max_versions": 40,
        "max_duration": 600.0,
        "server_lr": 0.5,
        "validate_every": 3,
    }


ASYNC_FIELDS = (
    "mode",
    "max_concurrency",
    "staleness",
    "staleness_exponent",
    "max_staleness",
    "max_versions",
    "max_duration",
    "server_lr",
    "validate_every",
)


def test_start_session_leaves_unset_async_fields_to_the_servers_defaults(
    server: ApiServer, api: APIClient, tmp_path: Path
):
    api.set_active_model(get_helper("numpyhelper").save([[1.0, 2.0]], str(tmp_path / "seed.npz")))

    session_id = api.start_session(mode="async", max_duration=30.0)

    config = server.statestore.sessions.get(session_id).config
    assert config.model_dump(include=set(ASYNC_FIELDS)) == SessionConfig(
        mode="async", max_duration=30.0
    ).model_dump(include=set(ASYNC_FIELDS))


def test_an_async_session_without_an_end_is_422_saying_what_to_add(api: APIClient):
    with pytest.raises(APIError) as error:
        api.start_session(mode="async")
    assert error.value.status_code == 422
    assert "an async session needs max_versions or max_duration (or both) to end" in error.value.message


def test_an_unknown_mode_or_staleness_function_is_422_naming_the_field(api: APIClient):
    with pytest.raises(APIError) as mode:
        api.start_session(mode="fast", max_versions=3)
    assert mode.value.status_code == 422 and "body.config.mode" in mode.value.message
    with pytest.raises(APIError) as staleness:
        api.start_session(mode="async", max_versions=3, staleness="linear")
    assert "body.config.staleness" in staleness.value.message
