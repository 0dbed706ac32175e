"""TLS on every hop, end to end: real `scaleout api`, `combiner` and `client start` processes with the
certificates `scaleout certs create` makes. The API serves https, the combiner gRPC over TLS (with
mutual TLS when asked), and every dialling process verifies against the CA it is given; plaintext and
wrong CAs are refused, the latter with one line naming the CA file and the fix."""

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from scaleout.certs import create_certificates
from scaleout.proto import scaleout_pb2 as pb
from scaleout.proto import scaleout_pb2_grpc as rpc
from scaleout.proto.channels import open_channel
from scaleout.tls import ClientTLS
from tests.e2e.federation import SCALEOUT, Federation, federation, free_port, make_package, wait_until
from tests.e2e.test_federation import ENV, TRAIN, assert_model_is_seed_plus, rounds_of, run_session, seeded

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

UNTRUSTED = "unable to get local issuer certificate"  # OpenSSL's and BoringSSL's words for a foreign CA


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_certificates(tmp_path_factory.mktemp("certs"), []).folder


@pytest.fixture(scope="module")
def foreign_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA of another federation: it signed nothing these servers present."""
    return create_certificates(tmp_path_factory.mktemp("foreign"), []).path("ca.pem")


def tls_env(certs: Path, mutual: bool = False) -> dict[str, str]:
    """Every process's TLS settings: the api and combiners serve with server.pem, all verify ca.pem."""
    env = {
        **ENV,
        "SCALEOUT_TLS_CERT": str(certs / "server.pem"),
        "SCALEOUT_TLS_KEY": str(certs / "server-key.pem"),
        "SCALEOUT_TLS_CA": str(certs / "ca.pem"),
    }
    if mutual:  # the combiner requires client certificates; clients and the controller present one
        env["SCALEOUT_TLS_CLIENT_CA"] = str(certs / "ca.pem")
        env["SCALEOUT_TLS_CLIENT_CERT"] = str(certs / "client.pem")
        env["SCALEOUT_TLS_CLIENT_KEY"] = str(certs / "client-key.pem")
    return env


def ca_refusal(what: str, ca: Path) -> str:
    return (
        f"{what} presented a certificate that does not verify against the CA in {ca} ({UNTRUSTED}); "
        "pass the CA that signed the server's certificate with --tls-ca (env SCALEOUT_TLS_CA)"
    )


@pytest.fixture
def tls_fed(tmp_path: Path, certs: Path) -> Iterator[Federation]:
    db, models = f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models"
    with federation(tmp_path, db, models, tls_env(certs)) as fed:
        yield fed


@pytest.fixture
def mtls_fed(tmp_path: Path, certs: Path) -> Iterator[Federation]:
    db, models = f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models"
    with federation(tmp_path, db, models, tls_env(certs, mutual=True)) as fed:
        yield fed


def combiner_target(fed: Federation) -> str:
    (combiner,) = fed.api.get_combiners()["result"]
    return f"127.0.0.1:{combiner['port']}"


async def heartbeat(target: str, tls: ClientTLS | None) -> grpc.StatusCode:
    """What a client's first call gets from the combiner over a channel with these TLS settings."""
    async with open_channel(target, tls) as channel:
        try:
            await rpc.CombinerClientStub(channel).SendHeartbeat(pb.Heartbeat(client_id="probe"), timeout=20)
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def stopped_with(fed: Federation, name: str, line: str) -> None:
    """The client process stopped on its own, exit code 1, with exactly this line."""
    process = fed.processes[name]
    assert process.popen.wait(timeout=120) == 1, process.log()
    assert line in process.log().splitlines(), process.log()


def test_a_tls_federation_trains_over_https_and_grpc_tls_with_clients_verifying_the_ca(
    tls_fed: Federation,
) -> None:
    fed = tls_fed
    assert fed.api_url.startswith("https://")
    seeded(fed)
    fed.start_combiner()
    (combiner,) = fed.api.get_combiners()["result"]
    assert combiner["tls"] is True  # the record tells the API, which tells the clients
    for index, k in enumerate(("1", "3")):
        fed.start_client(f"client-{index}", extra_env={"E2E_K": k, "E2E_N": "10"})
    fed.wait_for_clients(2)

    session = run_session(fed, rounds=2, validate=False, min_clients=2)

    assert session["status"] == "Finished", session
    rounds = rounds_of(fed, session["id"])
    assert [r["status"] for r in rounds] == ["Finished", "Finished"]
    assert_model_is_seed_plus(fed, rounds[-1]["model_id"], 2 * 2.0)
    # The API speaks nothing but TLS: a plain http request gets no answer.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{fed.api_port}/api/v1/health", timeout=10)


def test_an_mtls_federation_trains_and_refuses_callers_without_a_client_certificate(
    mtls_fed: Federation, certs: Path, tmp_path: Path
) -> None:
    fed = mtls_fed
    seeded(fed)
    fed.start_combiner()
    for index in range(2):
        fed.start_client(f"client-{index}", extra_env={"E2E_K": "1", "E2E_N": "10"})
    fed.wait_for_clients(2)

    # The controller presents its client certificate too: the round's Control calls go through.
    session = run_session(fed, rounds=1, validate=False, min_clients=2)

    assert session["status"] == "Finished", session
    assert_model_is_seed_plus(fed, rounds_of(fed, session["id"])[0]["model_id"], 1.0)
    target, ca = combiner_target(fed), certs / "ca.pem"
    stranger = create_certificates(tmp_path / "stranger", [])  # a client certificate of another CA
    # With the federation's client certificate the call reaches the combiner (whatever it answers) ...
    mutual = ClientTLS(ca, certs / "client.pem", certs / "client-key.pem")
    assert asyncio.run(heartbeat(target, mutual)) != grpc.StatusCode.UNAVAILABLE
    # ... without one, or with one of another CA, the handshake fails.
    assert asyncio.run(heartbeat(target, ClientTLS(ca))) == grpc.StatusCode.UNAVAILABLE
    foreign = ClientTLS(ca, stranger.path("client.pem"), stranger.path("client-key.pem"))
    assert asyncio.run(heartbeat(target, foreign)) == grpc.StatusCode.UNAVAILABLE


def test_a_plaintext_client_cannot_connect_to_a_tls_combiner(tls_fed: Federation, certs: Path) -> None:
    fed = tls_fed
    fed.start_combiner()
    target = combiner_target(fed)

    assert asyncio.run(heartbeat(target, None)) == grpc.StatusCode.UNAVAILABLE
    assert fed.api.get_clients()["result"] == []

    # The same call over TLS reaches the combiner, which records the heartbeat's client.
    assert asyncio.run(heartbeat(target, ClientTLS(certs / "ca.pem"))) == grpc.StatusCode.OK
    assert [c["id"] for c in fed.api.get_clients()["result"]] == ["probe"]


def test_a_combiner_certificate_from_another_ca_is_refused_naming_the_ca_file(
    tmp_path: Path, certs: Path, foreign_ca: Path
) -> None:
    # The API is plaintext on loopback; the combiner serves TLS; everyone trusts the wrong CA.
    db, models = f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models"
    with federation(tmp_path, db, models, {**ENV, "SCALEOUT_TLS_CA": str(foreign_ca)}) as fed:
        seeded(fed)
        server = tls_env(certs)
        fed.start_combiner(extra_env={k: server[k] for k in ("SCALEOUT_TLS_CERT", "SCALEOUT_TLS_KEY")})
        target = combiner_target(fed)
        fed.start_client("client-0", local_package=make_package(tmp_path / "local", TRAIN))

        # The client stops with one line: no retry can make the certificate verify.
        stopped_with(fed, "client-0", f"Error: {ca_refusal(f'the combiner at {target}', foreign_ca)}")

        # The controller refuses it too, and the failed session says why.
        session = run_session(fed, rounds=1, validate=False, round_retries=0)
        assert session["status"] == "Failed", session
        assert ca_refusal(f"the combiner at {target}", foreign_ca) in session["error"]


def test_an_https_api_certificate_from_another_ca_is_refused_naming_the_ca_file(
    tls_fed: Federation, foreign_ca: Path
) -> None:
    fed = tls_fed
    expected = f"Error: {ca_refusal(f'the API at https://127.0.0.1:{fed.api_port}', foreign_ca)}"

    fed.start_client("client-0", extra_env={"SCALEOUT_TLS_CA": str(foreign_ca)})
    stopped_with(fed, "client-0", expected)

    command = [SCALEOUT, "combiner", "list", "--api-url", fed.api_url, "--tls-ca", str(foreign_ca)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == expected


def test_combiner_health_dials_tls_with_the_ca(tls_fed: Federation, certs: Path, foreign_ca: Path) -> None:
    fed = tls_fed
    fed.start_combiner()
    target = combiner_target(fed)
    host, port = target.split(":")

    def health(*flags: str) -> subprocess.CompletedProcess[str]:
        command = [SCALEOUT, "combiner", "health", "--host", host, "--port", port, *flags]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    ok = health("--tls-ca", str(certs / "ca.pem"))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"combiner combiner at {target} is serving 0 client(s)"
    refused = health("--tls-ca", str(foreign_ca))
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"combiner at {target} is not healthy: {ca_refusal(f'the combiner at {target}', foreign_ca)}"
    )
    assert health().returncode == 1  # plaintext: refused


@pytest.mark.parametrize(("server", "what"), [("api", "the API"), ("combiner", "combiner combiner")])
def test_a_plaintext_server_bound_beyond_loopback_warns_loudly(
    tmp_path: Path, server: str, what: str
) -> None:
    port = free_port()
    fed = Federation(tmp_path, f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models")
    command = [server, "start", "--host", "0.0.0.0", "--port", str(port), "--db", fed.db, "--models"]
    process = fed._spawn(server, [*command, fed.models])
    try:
        warning = (
            f"{what} serves PLAINTEXT on 0.0.0.0:{port}: tokens and models cross the network "
            "readable by anyone on the path; give it --tls-cert and --tls-key (`scaleout certs create` "
            "makes them), or bind it to 127.0.0.1"
        )
        wait_until(lambda: fed._check_alive(process) or warning in process.log(), 60, "the warning")
    finally:
        fed.stop()
