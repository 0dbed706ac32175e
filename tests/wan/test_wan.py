"""WAN links: the delaying relay, and a client behind a shaped link in a network namespace whose link is
cut mid-round (`ip link set down`): the round ends without it, and it rejoins when the link returns.

The namespace tests need root (`ip netns add`); they skip, saying so, only where that is not permitted.
"""

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.swarm import check_model, start_swarm, write_package
from scaleoututil.helpers.helpers import get_helper
from tests.e2e.federation import TEST_ENV, Federation, federation, free_port, wait_until
from tests.wan import relay
from tests.wan.netns import NetnsUnavailable, WanLink, check_netns, wan_link

pytestmark = pytest.mark.timeout(400)

RELAY = str(Path(relay.__file__))


@pytest.mark.anyio
async def test_the_relay_delays_each_direction_and_keeps_the_bytes_in_order() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    target = await asyncio.start_server(echo, "127.0.0.1", 0)
    target_port = target.sockets[0].getsockname()[1]
    delayed = await relay.serve(("127.0.0.1", 0), ("127.0.0.1", target_port), 0.1)
    port = delayed.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = bytes(range(256)) * 4096  # 1 MiB
        loop = asyncio.get_running_loop()
        started = loop.time()
        writer.write(payload)
        await writer.drain()
        echoed = await reader.readexactly(len(payload))
        round_trip = loop.time() - started
        writer.close()
    finally:
        delayed.close()
        target.close()

    assert echoed == payload
    assert round_trip >= 0.2  # a lower bound: a loaded machine can only make it later


@pytest.fixture
def link() -> Iterator[WanLink]:
    try:
        check_netns()
    except NetnsUnavailable as exc:
        pytest.skip(str(exc))
    with wan_link(rate_mbit=40) as link:
        yield link


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federation]:
    db, models = f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models"
    with federation(tmp_path, db, models, TEST_ENV) as fed:
        yield fed


def relayed(fed: Federation, name: str, link: WanLink, port: int, delay: float) -> None:
    """Relay link.host_ip:port to 127.0.0.1:port (the far side reaches this one only through it)."""
    fed.spawn_python(name, [RELAY, f"{link.host_ip}:{port}", f"127.0.0.1:{port}", str(delay)])
    wait_until(lambda: socket.create_connection((link.host_ip, port), timeout=1).close() or True, 30, name)


def status(fed: Federation, client_id: str) -> str:
    (client,) = fed.api.get_clients(name=client_id)["result"]  # a swarm client's name is its id
    return client["status"]


def test_a_client_cut_off_mid_round_leaves_it_and_rejoins_when_the_link_returns(
    fed: Federation, link: WanLink
) -> None:
    relayed(fed, "relay-api", link, fed.api_port, 0.005)
    port = free_port()
    relayed(fed, "relay-combiner", link, port, 0.005)
    fed.start_combiner("combiner", port, {"SCALEOUT_COMBINER_ADVERTISE_HOST": link.host_ip})
    seed = [np.zeros(5_000_000, dtype=np.float32)]  # 20 MB: 4 s each way at 40 Mbit/s
    fed.api.set_active_model(get_helper("numpyhelper").save(seed, str(fed.root / "seed.npz")))
    package = write_package(fed.root / "swarm-package")
    start_swarm(fed, 1, 1, first=0, package=package)  # swarm-0, on this side of the link
    remote_url = f"http://{link.host_ip}:{fed.api_port}"
    start_swarm(fed, 1, 1, first=1, package=package, api_url=remote_url, prefix=link.prefix())  # swarm-1
    fed.wait_for_clients(2, timeout=120)

    session_id = fed.api.start_session(
        rounds=1, min_clients=1, requested_clients=2, round_timeout=60, validate=False
    )
    wait_until(lambda: fed.api.get_rounds(session_id=session_id)["count"] == 1, 60, "the round to start")
    link.set_up(False)
    session = fed.api.wait_for_session(session_id, timeout=180)

    assert session["status"] == "Finished", session
    (record,) = fed.api.get_rounds(session_id=session_id)["result"]
    assert [c["client_id"] for c in record["clients"]] == ["swarm-0"]
    check_model(fed, record["model_id"], seed, 1)

    wait_until(lambda: status(fed, "swarm-1") == "offline", 120, "swarm-1 offline while its link is down")
    link.set_up(True)
    wait_until(lambda: status(fed, "swarm-1") == "online", 180, "swarm-1 back online with its link")
    again = fed.api.wait_for_session(
        fed.api.start_session(
            rounds=1, min_clients=2, requested_clients=2, round_timeout=120, validate=False
        ),
        timeout=300,
    )
    assert again["status"] == "Finished", again
    (record,) = fed.api.get_rounds(session_id=again["id"])["result"]
    assert sorted(c["client_id"] for c in record["clients"]) == ["swarm-0", "swarm-1"]
