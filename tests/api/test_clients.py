"""POST /clients/add: assignment to the least-loaded online combiner, per the contract."""

import io
import tarfile
from datetime import timedelta

import httpx

from scaleout.store.entities import Client, Combiner, NodeStatus, utcnow
from tests.api.conftest import ApiServer

PROJECT_FILE = b"entry_points:\n  train:\n    command: python train.py\n"


def activate_package(server: ApiServer, helper: str = "numpyhelper") -> None:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        info = tarfile.TarInfo("scaleout.yaml")
        info.size = len(PROJECT_FILE)
        tar.addfile(info, io.BytesIO(PROJECT_FILE))
    files = {"file": ("p.tgz", data.getvalue())}
    with server.http() as http:
        assert http.post("/packages/", files=files, data={"helper": helper}).status_code == 201


def add_combiner(
    server: ApiServer, name: str, clients: int, seen_ago: float = 0.0, tls: bool = False
) -> Combiner:
    combiner = Combiner(
        id=name, name=name, address=f"{name}.local", port=12080, client_count=clients,
        status=NodeStatus.ONLINE, last_seen=utcnow() - timedelta(seconds=seen_ago), tls=tls,
    )  # fmt: skip
    server.statestore.combiners.upsert(combiner)
    for index in range(clients):
        server.statestore.clients.upsert(
            Client(
                id=f"{name}-client-{index}", combiner_id=name, status=NodeStatus.ONLINE, last_seen=utcnow()
            )
        )
    return combiner


def test_203_while_no_package_is_active_and_the_client_wants_the_remote_one(
    server: ApiServer, http: httpx.Client
):
    add_combiner(server, "combiner", 0)

    response = http.post("/clients/add", json={"client_id": "c1", "name": "c1", "package": "remote"})

    assert response.status_code == 203
    assert "no compute package is active yet" in response.json()["message"]
    assert server.statestore.clients.count() == 0


def test_503_when_no_combiner_is_online(server: ApiServer, http: httpx.Client):
    activate_package(server)
    add_combiner(server, "gone", 0, seen_ago=3600)  # registered long ago, silent since

    response = http.post("/clients/add", json={"client_id": "c1", "name": "c1"})

    assert response.status_code == 503
    assert "no combiner is online" in response.json()["detail"]
    assert "scaleout combiner start" in response.json()["detail"]


def test_a_local_package_client_is_assigned_before_any_package_is_uploaded(
    server: ApiServer, http: httpx.Client
):
    add_combiner(server, "combiner", 0)

    response = http.post("/clients/add", json={"client_id": "c1", "name": "c1", "package": "local"})

    assert response.status_code == 200
    assert response.json()["package"] == "local"
    assert response.json()["helper_type"] == "numpyhelper"


def test_the_least_loaded_online_combiner_is_assigned_and_the_client_recorded(
    server: ApiServer, http: httpx.Client
):
    activate_package(server, helper="binaryhelper")
    add_combiner(server, "busy", clients=3)
    add_combiner(server, "quiet", clients=1)
    add_combiner(server, "idle-but-offline", clients=0, seen_ago=600)

    response = http.post("/clients/add", json={"client_id": "edge-7", "name": "seven"})

    assert response.status_code == 200
    assert response.json() == {
        "client_id": "edge-7",
        "combiner": {"host": "quiet.local", "port": 12080, "name": "quiet", "tls": False},
        "package": "remote",
        "helper_type": "binaryhelper",
        "host": "quiet.local",
        "public_hostname": "quiet.local",
        "internal_hostname": "quiet.local",
        "port": 12080,
        "grpc_secure": False,
    }
    client = server.statestore.clients.get("edge-7")
    assert client.combiner_id == "quiet" and client.name == "seven"


def test_the_answer_tells_the_client_that_its_combiner_speaks_tls(server: ApiServer, http: httpx.Client):
    activate_package(server)
    add_combiner(server, "secure", clients=0, tls=True)

    response = http.post("/clients/add", json={"client_id": "c1", "name": "c1"})

    assert response.status_code == 200
    assert response.json()["combiner"] == {
        "host": "secure.local",
        "port": 12080,
        "name": "secure",
        "tls": True,
    }
    assert response.json()["grpc_secure"] is True


def test_the_official_clients_request_gets_the_top_level_fields_it_dials(
    server: ApiServer, http: httpx.Client
):
    """scaleout==1.1.0 sends these keys and reads public_hostname, port and grpc_secure at the top."""
    activate_package(server)
    add_combiner(server, "plain", clients=0)
    body = {
        "name": "edge",
        "client_id": "0b7c1c9e-5f4e-4a57-9d1e-3f0f2d6f9a11",
        "preferred_combiner": None,
        "package": "local",
        "client_version": "1.1.0",
    }

    answer = http.post("/clients/add", json=body).json()

    assert answer["client_id"] == body["client_id"]
    assert (answer["public_hostname"], answer["port"], answer["grpc_secure"]) == ("plain.local", 12080, False)
    assert answer["helper_type"] == "numpyhelper"


def test_a_burst_of_clients_is_spread_over_the_combiners_at_once(server: ApiServer, http: httpx.Client):
    activate_package(server)
    add_combiner(server, "a", clients=0)
    add_combiner(server, "b", clients=0)

    names = [
        http.post("/clients/add", json={"client_id": f"c{i}"}).json()["combiner"]["name"] for i in range(4)
    ]

    assert names == ["a", "b", "a", "b"]


def test_connected_clients_count_however_long_ago_their_record_was_written(
    server: ApiServer, http: httpx.Client
):
    """The combiner rewrites a connected client's record only every client_write_interval (minutes):
    such a client still loads its combiner; one that went offline long ago does not."""
    activate_package(server)
    add_combiner(server, "a", clients=0)
    add_combiner(server, "b", clients=0)
    long_ago = utcnow() - timedelta(minutes=10)
    for index in range(2):
        server.statestore.clients.upsert(
            Client(id=f"a-{index}", combiner_id="a", status=NodeStatus.ONLINE, last_seen=long_ago)
        )
    for index in range(3):
        server.statestore.clients.upsert(
            Client(id=f"b-{index}", combiner_id="b", status=NodeStatus.OFFLINE, last_seen=long_ago)
        )
    server.statestore.clients.upsert(Client(id="b-new", combiner_id="b", last_seen=utcnow()))

    names = [
        http.post("/clients/add", json={"client_id": f"c{i}"}).json()["combiner"]["name"] for i in range(3)
    ]

    # a: 2 connected; b: 1 just assigned (its 3 offline clients are gone) -> b; then a tie at 2 -> a; b
    assert names == ["b", "a", "b"]


def test_a_client_asking_again_does_not_count_against_its_own_combiner(server: ApiServer, http: httpx.Client):
    activate_package(server)
    add_combiner(server, "a", clients=2)
    add_combiner(server, "b", clients=1)
    server.statestore.clients.upsert(Client(id="c1", combiner_id="b", status=NodeStatus.ONLINE))

    response = http.post("/clients/add", json={"client_id": "c1"})

    assert response.json()["combiner"]["name"] == "b"  # b holds 1 client besides c1, a holds 2


def test_ties_go_to_the_first_combiner_by_name(server: ApiServer, http: httpx.Client):
    activate_package(server)
    add_combiner(server, "b", clients=2)
    add_combiner(server, "a", clients=2)

    response = http.post("/clients/add", json={"client_id": "c1", "name": "c1"})

    assert response.json()["combiner"]["name"] == "a"


def test_reassignment_keeps_what_the_combiner_recorded(server: ApiServer, http: httpx.Client):
    activate_package(server)
    add_combiner(server, "a", clients=0)
    server.statestore.clients.add(Client(id="c1", name="c1", combiner_id="old", status=NodeStatus.ONLINE))

    http.post("/clients/add", json={"client_id": "c1", "name": "c1"})

    client = server.statestore.clients.get("c1")
    assert client.combiner_id == "a" and client.status == NodeStatus.ONLINE


def test_a_bad_body_is_422_naming_the_field(http: httpx.Client):
    missing = http.post("/clients/add", json={"name": "c1"})
    wrong = http.post("/clients/add", json={"client_id": "c1", "package": "elsewhere"})

    assert missing.status_code == wrong.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "client_id"]
    assert wrong.json()["detail"][0]["loc"] == ["body", "package"]


def test_the_client_is_recorded_with_the_package_it_will_download(server: ApiServer, http: httpx.Client):
    activate_package(server)
    add_combiner(server, "combiner", 0)
    active = server.statestore.packages.active()

    assert http.post("/clients/add", json={"client_id": "remote-1"}).status_code == 200
    assert http.post("/clients/add", json={"client_id": "local-1", "package": "local"}).status_code == 200

    assert server.statestore.clients.get("remote-1").package_checksum == active.sha256
    # its own package: the API cannot know what it runs
    assert server.statestore.clients.get("local-1").package_checksum is None
