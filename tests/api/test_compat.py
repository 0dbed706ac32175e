"""FEDn's REST dialect (api/compat.py) answers exactly what our own parameters and routes answer."""

import hashlib
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from scaleout.compute_package import create_package
from scaleout.store.entities import Client, Event, Model, Session, SessionStatus, Validation, utcnow
from scaleoututil.helpers.helpers import get_helper
from tests.api.conftest import ApiServer, run_api
from tests.api.test_packages import package_folder


def seed_models(server: ApiServer, count: int = 5) -> list[Model]:
    """A chain seed -> m1 -> ... committed one second apart, so committed_at orders them."""
    start, models, parent = utcnow(), [], None
    for index in range(count):
        ancestors = [parent.id, *parent.ancestors] if parent else []
        model = Model(
            name=f"m{index}",
            parent_id=parent.id if parent else None,
            ancestors=ancestors,
            committed_at=start + timedelta(seconds=index),
        )
        models.append(server.statestore.models.add(model))
        parent = model
    return models


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["result"]]


def test_paging_headers_page_and_sort_exactly_like_the_query_parameters(
    server: ApiServer, http: httpx.Client
):
    models = seed_models(server)
    headers = {"X-Limit": "2", "X-Skip": "1", "X-Sort-Key": "committed_at", "X-Sort-Order": "DESC"}

    by_header = http.get("/models/", headers=headers)
    by_query = http.get(
        "/models/", params={"limit": 2, "skip": 1, "sort_key": "committed_at", "sort_order": "desc"}
    )

    assert ids(by_header) == ids(by_query) == [models[3].id, models[2].id]
    assert by_header.json()["count"] == 5


def test_fedns_active_model_request_answers_the_latest_model_not_the_seed(
    server: ApiServer, http: httpx.Client
):
    models = seed_models(server)

    answer = http.get(
        "/models/", headers={"X-Limit": "1", "X-Sort-Key": "committed_at", "X-Sort-Order": "desc"}
    )

    (latest,) = answer.json()["result"]
    assert latest["id"] == latest["model_id"] == models[-1].id


def test_a_query_parameter_wins_over_its_header(server: ApiServer, http: httpx.Client):
    models = seed_models(server)

    answer = http.get("/models/", params={"limit": 3}, headers={"X-Limit": "1"})

    assert ids(answer) == [m.id for m in models[:3]]


def test_a_header_count_that_is_not_a_number_is_ignored_as_fedn_does(server: ApiServer, http: httpx.Client):
    models = seed_models(server)

    # FEDn's get_model_trail() sends our {"count": N} answer as X-Limit.
    answer = http.get("/models/", headers={"X-Limit": "{'count': 5}", "X-Skip": "-1"})

    assert ids(answer) == [m.id for m in models]


def test_a_bad_sort_header_is_refused_like_the_bad_query_parameter(server: ApiServer, http: httpx.Client):
    seed_models(server)

    by_header = http.get("/models/", headers={"X-Sort-Order": "sideways"})
    by_query = http.get("/models/", params={"sort_order": "sideways"})

    assert by_header.status_code == by_query.status_code == 422
    assert by_header.json() == by_query.json()


def test_camel_case_and_sender_filters_select_what_the_snake_case_ones_do(
    server: ApiServer, http: httpx.Client
):
    store = server.statestore
    for session, model, client in [("s1", "m1", "c1"), ("s1", "m2", "c2"), ("s2", "m1", "c1")]:
        store.validations.add(Validation(session_id=session, model_id=model, client_id=client))

    assert ids(http.get("/validations/", params={"sessionId": "s1"})) == ids(
        http.get("/validations/", params={"session_id": "s1"})
    )
    assert len(ids(http.get("/validations/", params={"sessionId": "s1"}))) == 2
    both = {"sessionId": "s1", "modelId": "m1", "sender.name": "c1"}
    (only,) = http.get("/validations/", params=both).json()["result"]
    assert (only["session_id"], only["model_id"], only["client_id"]) == ("s1", "m1", "c1")
    assert http.get("/validations/count", params={"sender.client_id": "c1"}).json() == {"count": 2}


def test_fedns_combiner_filter_on_clients_is_combiner_id(server: ApiServer, http: httpx.Client):
    server.statestore.clients.add(Client(id="a", combiner_id="comb-1", status="online"))
    server.statestore.clients.add(Client(id="b", combiner_id="comb-2", status="online"))

    assert ids(http.get("/clients/", params={"status": "online", "combiner": "comb-2"})) == ["b"]
    assert ids(http.get("/clients/", params={"combinerId": "comb-1"})) == ["a"]


def test_an_unsupported_fedn_filter_is_refused_not_ignored(http: httpx.Client):
    answer = http.get("/validations/", params={"sender.role": "client"})

    assert answer.status_code == 422
    assert "unknown query parameter 'sender.role' for validations" in answer.text


def test_the_trail_takes_include_self_reverse_and_a_limit(server: ApiServer, http: httpx.Client):
    seed, m1, m2, m3, m4 = seed_models(server)

    plain = http.get(f"/models/{m4.id}/ancestors")
    with_self = http.get(f"/models/{m4.id}/ancestors", params={"include_self": "true"})
    fedn = http.get(
        f"/models/{m4.id}/ancestors?include_self=true", headers={"X-Reverse": "true", "X-Limit": "2"}
    )

    assert ids(plain) == [m3.id, m2.id, m1.id, seed.id]
    assert ids(with_self) == [m4.id, m3.id, m2.id, m1.id, seed.id]
    assert ids(fedn) == [m2.id, m3.id, m4.id]
    assert fedn.json()["count"] == 5  # the whole trail with the model itself; limit pages it


def test_answers_carry_model_id_and_session_id_beside_id(server: ApiServer, http: httpx.Client):
    (model,) = seed_models(server, 1)
    session = server.statestore.sessions.add(Session(name="s"))

    assert http.get(f"/models/{model.id}").json()["model_id"] == model.id
    assert http.get("/sessions/").json()["result"][0]["session_id"] == session.id
    # computed for answers only: what the statestore holds is unchanged
    assert "model_id" not in Model.model_fields and server.statestore.models.get(model.id) == model


def test_the_active_helper_is_the_packages_and_can_only_be_confirmed(http: httpx.Client, tmp_path: Path):
    assert http.get("/helpers/active").json() == "numpyhelper"
    assert http.put("/helpers/active", json={"helper": "numpyhelper"}).json() == {"helper": "numpyhelper"}

    other = http.put("/helpers/active", json={"helper": "binaryhelper"})

    assert other.status_code == 409
    assert other.json()["detail"] == (
        "the active helper is 'numpyhelper', set by the compute package; upload the package with "
        "helper='binaryhelper' to use that one"
    )


FEDN_SESSION = {
    "name": "fedn-session",
    "seed_model_id": None,
    "session_config": {
        "aggregator": "fedavg",
        "aggregator_kwargs": None,
        "round_timeout": 30,
        "buffer_size": -1,
        "model_id": None,
        "delete_models_storage": True,
        "clients_required": 2,
        "requested_clients": 8,
        "validate": False,
        "helper_type": "numpyhelper",
        "server_functions": None,
    },
}


def test_a_fedn_session_body_creates_the_session_it_describes(server: ApiServer, http: httpx.Client):
    (seed,) = seed_models(server, 1)
    body = {**FEDN_SESSION, "seed_model_id": seed.id}

    answer = http.post("/sessions/", json=body)

    assert answer.status_code == 201, answer.text
    session = answer.json()
    assert session["session_id"] == session["id"]
    assert session["status"] == "Created" and session["seed_model_id"] == seed.id
    config = session["config"]
    assert (config["min_clients"], config["requested_clients"], config["buffer_size"]) == (2, 8, None)
    assert (config["round_timeout"], config["validate"], config["helper"]) == (30.0, False, "numpyhelper")


def test_fedns_start_call_starts_the_created_session_with_its_rounds(server: ApiServer, http: httpx.Client):
    (seed,) = seed_models(server, 1)
    session_id = http.post("/sessions/", json={**FEDN_SESSION, "seed_model_id": seed.id}).json()["session_id"]

    started = http.post("/sessions/start", json={"session_id": session_id, "rounds": 3, "round_timeout": 45})

    assert started.status_code == 201, started.text
    assert started.json()["status"] == "Started"  # no controller here: the API records the start
    assert (started.json()["config"]["rounds"], started.json()["config"]["round_timeout"]) == (3, 45.0)
    again = http.post("/sessions/start", json={"session_id": session_id, "rounds": 1})
    assert again.status_code == 409
    assert server.statestore.sessions.get(session_id).config.rounds == 3


def test_fedn_session_bodies_are_checked_like_ours(server: ApiServer, http: httpx.Client):
    with_functions = {
        **FEDN_SESSION,
        "session_config": {**FEDN_SESSION["session_config"], "server_functions": "x"},
    }
    too_many = {**FEDN_SESSION, "session_config": {**FEDN_SESSION["session_config"], "clients_required": 9}}

    refused = http.post("/sessions/", json=with_functions)
    assert refused.status_code == 422
    (error,) = refused.json()["detail"]
    assert error["loc"] == ["body", "session_config", "server_functions"]
    assert error["msg"].startswith("server functions are not supported here")
    answer = http.post("/sessions/", json=too_many)
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "session_config"]
    assert "requested_clients (8) is below min_clients (9)" in error["msg"]
    assert server.statestore.sessions.count() == 0


def chunked_upload(http: httpx.Client, data: bytes, name: str, chunk: int) -> str:
    upload_id = http.post(
        "/file-upload/init", json={"file_name": name, "file_size": len(data), "chunk_size": chunk}
    ).json()["upload_id"]
    for index, start in enumerate(range(0, len(data), chunk)):
        sent = http.post(
            f"/file-upload/{upload_id}/chunk",
            content=data[start : start + chunk],
            headers={"X-Chunk-Index": str(index)},
        )
        assert sent.status_code == 200, sent.text
    return http.post(f"/file-upload/{upload_id}/complete").json()["file_token"]


def test_a_chunked_upload_becomes_the_active_package_by_its_token(http: httpx.Client, tmp_path: Path):
    tgz = create_package(package_folder(tmp_path), output_dir=tmp_path).read_bytes()
    token = chunked_upload(http, tgz, "mine.tgz", chunk=100)

    package = http.post("/packages/", data={"file_token": token, "helper": "numpyhelper", "name": "p"})

    assert package.status_code == 201, package.text
    assert package.json()["sha256"] == hashlib.sha256(tgz).hexdigest()
    assert (package.json()["file_name"], package.json()["size"]) == ("mine.tgz", len(tgz))
    assert http.get("/packages/download").content == tgz
    reused = http.post("/packages/", data={"file_token": token, "helper": "numpyhelper"})
    assert reused.status_code == 422 and "unknown or used file_token" in reused.json()["detail"]


def test_a_chunked_seed_model_is_checked_and_stored(http: httpx.Client, tmp_path: Path):
    path = tmp_path / "seed.npz"
    get_helper("numpyhelper").save([np.arange(3.0)], str(path))
    token = chunked_upload(http, path.read_bytes(), "seed.npz", chunk=64)

    model = http.post("/models/", data={"file_token": token, "helper": "numpyhelper"})

    assert model.status_code == 201, model.text
    assert http.get(f"/models/{model.json()['model_id']}/download").content == path.read_bytes()


def test_chunks_must_come_in_order_and_complete_the_file(http: httpx.Client):
    upload_id = http.post("/file-upload/init", json={"file_name": "f", "file_size": 10}).json()["upload_id"]

    skipped = http.post(f"/file-upload/{upload_id}/chunk", content=b"12345", headers={"X-Chunk-Index": "1"})
    http.post(f"/file-upload/{upload_id}/chunk", content=b"12345", headers={"X-Chunk-Index": "0"})
    early = http.post(f"/file-upload/{upload_id}/complete")

    assert skipped.status_code == 409 and skipped.json()["detail"].endswith("is out of order: expected 0")
    assert early.status_code == 409
    assert early.json()["detail"] == f"upload {upload_id} has 5 of its 10 bytes; send the rest"
    assert http.post("/packages/", data={"helper": "numpyhelper"}).status_code == 422


def test_statuses_are_the_events(server: ApiServer, http: httpx.Client):
    server.statestore.events.add(Event(type="round", session_id="s1", client_id="c1"))
    server.statestore.events.add(Event(type="round", session_id="s2"))

    assert ids(http.get("/statuses/", params={"sessionId": "s1"})) == ids(
        http.get("/events/", params={"session_id": "s1"})
    )
    assert http.get("/statuses/count", params={"sender.name": "c1"}).json() == {"count": 1}


def test_client_config_names_this_api_and_the_packages_checksum(
    server: ApiServer, http: httpx.Client, tmp_path: Path
):
    assert http.get("/clients/config").json() == {
        "network_id": "scaleout-edge",
        "discover_host": "127.0.0.1",
        "discover_port": server.port,
        "checksum": None,
    }
    tgz = create_package(package_folder(tmp_path), output_dir=tmp_path)
    with tgz.open("rb") as file:
        http.post("/packages/", files={"file": file})

    assert http.get("/clients/config").json()["checksum"] == hashlib.sha256(tgz.read_bytes()).hexdigest()


def test_controller_status_is_instructing_while_a_session_runs(server: ApiServer):
    status = httpx.get(f"http://127.0.0.1:{server.port}/get_controller_status")
    assert status.json() == {"state": "idle"}

    server.statestore.sessions.add(Session(status=SessionStatus.STARTED))

    status = httpx.get(f"http://127.0.0.1:{server.port}/get_controller_status")
    assert status.json() == {"state": "instructing"}


@pytest.mark.parametrize("path", ["/helpers/active", "/clients/config", "/statuses/", "/file-upload/init"])
def test_the_compat_routes_need_the_admin_token(tmp_path: Path, path: str):
    with run_api(tmp_path, token="admin-token") as server, server.http() as http:
        method = "POST" if path.endswith("init") else "GET"
        assert http.request(method, path).status_code == 401


def test_an_upload_id_is_not_a_file_token_until_the_upload_completes(http: httpx.Client):
    upload_id = http.post("/file-upload/init", json={"file_name": "f", "file_size": 3}).json()["upload_id"]
    http.post(f"/file-upload/{upload_id}/chunk", content=b"abc", headers={"X-Chunk-Index": "0"})

    used = http.post("/packages/", data={"file_token": upload_id, "helper": "numpyhelper"})

    assert used.status_code == 422 and "unknown or used file_token" in used.json()["detail"]


def test_an_upload_above_the_apis_limit_is_refused_before_any_chunk(tmp_path: Path):
    with run_api(tmp_path, max_upload_bytes=1000) as server, server.http() as http:
        answer = http.post("/file-upload/init", json={"file_name": "big.tgz", "file_size": 1001})

    assert answer.status_code == 413
    assert answer.json()["detail"].startswith("file_size 1001 is above the upload limit of 1000 bytes")
