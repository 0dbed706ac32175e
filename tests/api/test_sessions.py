"""Sessions through the API without a controller: stored exactly, started one at a time, stopped."""

from pathlib import Path

import httpx
import pytest

from scaleout import APIClient
from scaleout.api.client import APIError, SessionTimeout
from scaleout.store.entities import Model, SessionStatus
from scaleoututil.helpers.helpers import get_helper
from tests.api.conftest import ApiServer

CONFIG = {
    "rounds": 3,
    "round_timeout": 42.5,
    "min_clients": 2,
    "requested_clients": 4,
    "buffer_size": 3,
    "aggregator": "fedavg",
    "aggregator_kwargs": {"dp_clip_norm": 0.5},
    "validate": False,
    "helper": "numpyhelper",
    "client_settings": {"epochs": 2, "batch": [32, 64]},
    "round_retries": 1,
    "max_update_norm": 10.0,
    "clip_updates": True,
    "retry_timeout": 30.0,
    # sync (central DP is sync only), with every async field set: stored as given all the same
    "mode": "sync",
    "max_concurrency": 6,
    "staleness": "constant",
    "staleness_exponent": 1.5,
    "max_staleness": 4,
    "max_versions": 20,
    "max_duration": 90.0,
    "server_lr": 0.5,
    "validate_every": 2,
}


def upload_seed(api: APIClient, tmp_path: Path) -> str:
    path = get_helper("numpyhelper").save([[1.0, 2.0]], str(tmp_path / "seed.npz"))
    return api.set_active_model(path)


def test_a_created_session_stores_its_config_exactly(server: ApiServer, http: httpx.Client):
    response = http.post("/sessions/", json={"name": "exact", "config": CONFIG})

    assert response.status_code == 201
    stored = http.get(f"/sessions/{response.json()['id']}").json()
    assert stored["config"] == CONFIG
    assert stored["name"] == "exact" and stored["status"] == "Created"
    assert server.statestore.sessions.get(stored["id"]).config.validate_models is False


def test_a_bad_session_body_is_422_naming_the_field(api: APIClient, http: httpx.Client):
    with pytest.raises(APIError) as error:
        api.start_session(rounds=0)
    assert error.value.status_code == 422
    assert "body.config.rounds" in error.value.message

    unknown = http.post("/sessions/", json={"config": {"rouns": 3}})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "config", "rouns"]


def test_starting_without_any_model_is_400_saying_to_upload_a_seed(api: APIClient):
    with pytest.raises(APIError) as error:
        api.start_session(rounds=1)

    assert error.value.status_code == 400
    assert error.value.message == "no seed model: upload one with POST /api/v1/models/"
    assert api.get_sessions()["count"] == 0


def test_a_started_session_defaults_to_the_latest_model(server: ApiServer, api: APIClient, tmp_path: Path):
    upload_seed(api, tmp_path)
    newest = server.statestore.models.add(Model(name="newer"))

    session = api.get_session(api.start_session(name="s", rounds=2, min_clients=1))

    assert session["seed_model_id"] == newest.id
    assert session["status"] == "Started" and session["started_at"] is not None


def test_an_unknown_seed_model_is_404(api: APIClient):
    with pytest.raises(APIError) as error:
        api.start_session(model_id="ghost")

    assert error.value.status_code == 404
    assert error.value.message == "Model 'ghost' not found"


def test_only_one_session_runs_at_a_time(api: APIClient, http: httpx.Client, tmp_path: Path):
    upload_seed(api, tmp_path)
    first = api.start_session(name="first")

    with pytest.raises(APIError) as error:
        api.start_session(name="second")
    assert error.value.status_code == 409
    assert "'first'" in error.value.message and first in error.value.message
    assert api.get_sessions()["count"] == 1

    waiting = http.post("/sessions/", json={"name": "later"}).json()
    assert http.post(f"/sessions/{waiting['id']}/start").status_code == 409

    assert api.stop_session(first)["status"] == "Terminated"
    assert http.post(f"/sessions/{waiting['id']}/start").json()["status"] == "Started"


def test_a_session_that_ended_cannot_start_or_stop_again(api: APIClient, tmp_path: Path):
    upload_seed(api, tmp_path)
    session_id = api.start_session()
    api.stop_session(session_id)

    with pytest.raises(APIError) as stop_again:
        api.stop_session(session_id)
    assert stop_again.value.status_code == 409
    assert "already ended: it is Terminated" in stop_again.value.message

    with pytest.raises(APIError) as start_again:
        api._request("POST", f"/sessions/{session_id}/start")
    assert start_again.value.status_code == 409
    assert "only a Created session can start" in start_again.value.message


def test_wait_for_session_returns_the_ended_session(server: ApiServer, api: APIClient, tmp_path: Path):
    upload_seed(api, tmp_path)
    session_id = api.start_session()
    server.statestore.sessions.update(session_id, {"status": SessionStatus.FINISHED, "rounds_done": 5})

    session = api.wait_for_session(session_id, timeout=5)

    assert session["status"] == "Finished" and session["rounds_done"] == 5


def test_wait_for_session_raises_at_its_bound_naming_the_status(api: APIClient, tmp_path: Path):
    upload_seed(api, tmp_path)
    session_id = api.start_session()

    with pytest.raises(SessionTimeout, match=r"is still Started after 0\.6 s"):
        api.wait_for_session(session_id, timeout=0.6)


def test_progress_is_none_without_a_running_round(api: APIClient, tmp_path: Path):
    upload_seed(api, tmp_path)

    assert api.get_session_progress(api.start_session()) is None
