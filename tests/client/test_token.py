"""The client sends its token on every gRPC call, and a combiner refusing the token stops it at once.

A real combiner (started with a token) on loopback; the API is the double, which assigns it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from scaleout.client.assignment import AssignmentError
from scaleout.client.credential import CREDENTIAL_FILE, CredentialError
from scaleout.client.edge import EdgeClient, Unauthenticated
from scaleout.combiner.auth import TOKEN_HELP
from scaleout.errors import ScaleoutError
from tests.api.conftest import ApiServer, run_api
from tests.client.doubles import WAIT, ApiDouble, assigned, make_package, serving
from tests.client.test_edge import CLIENT_ID, run, settings_for
from tests.combiner.driver import running_combiner

TOKEN = "federation-secret"


def test_a_client_with_the_token_opens_its_task_stream_and_heartbeats(tmp_path: Path) -> None:
    make_package(tmp_path / "pkg")

    async def scenario() -> None:
        async with running_combiner(tmp_path / "combiner", token=TOKEN) as combiner:
            registry = combiner.registry
            with ApiDouble([assigned(combiner.port)]) as api:
                async with serving(EdgeClient(settings_for(tmp_path, api.url, token=TOKEN))):
                    await registry.wait_for(lambda: CLIENT_ID in registry.streaming(), WAIT)
                    await registry.wait_for(lambda: registry.is_online(CLIENT_ID), WAIT)

    run(scenario())


@pytest.mark.parametrize("token", [None, "guess"])
def test_a_client_with_a_wrong_or_no_token_stops_with_the_fix(tmp_path: Path, token: str | None) -> None:
    make_package(tmp_path / "pkg")

    async def scenario() -> None:
        async with running_combiner(tmp_path / "combiner", token=TOKEN) as combiner:
            with ApiDouble([assigned(combiner.port)]) as api:
                client = EdgeClient(settings_for(tmp_path, api.url, token=token, reconnect_attempts=1000))
                with pytest.raises(Unauthenticated) as stopped:
                    await asyncio.wait_for(client.run(handle_signals=False), WAIT)
                assert len(api.add_calls) == 1, "a refused token must not be retried or reassigned"
            assert CLIENT_ID not in combiner.registry.streaming()
        assert TOKEN_HELP in str(stopped.value)

    run(scenario())


ADMIN = "admin-secret"


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[ApiServer]:
    """A real API with an admin token (no combiner: these clients stop before or at assignment)."""
    with run_api(tmp_path / "api", token=ADMIN) as server:
        yield server


def api_url(server: ApiServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def test_a_client_credential_gives_the_client_its_bound_id(tmp_path: Path, api_server: ApiServer) -> None:
    make_package(tmp_path / "pkg")
    with api_server.client(ADMIN) as admin:
        token = admin.create_client_token("site-a", "site-a")["token"]
    client = EdgeClient(
        settings_for(
            tmp_path, api_url(api_server), client_id=None, name=None, token=token, assign_timeout=0.2
        )
    )
    with pytest.raises(AssignmentError, match="no combiner is online"):
        run(client.run(handle_signals=False))  # assignment is reached as site-a; no combiner runs
    assert (client.client_id, client.name) == ("site-a", "client-site-a")
    assert (tmp_path / "work" / "client_id").read_text() == "site-a\n"


def test_a_client_id_other_than_the_credentials_stops_the_client_naming_both(
    tmp_path: Path, api_server: ApiServer
) -> None:
    make_package(tmp_path / "pkg")
    with api_server.client(ADMIN) as admin:
        token = admin.create_client_token("site-a", "site-a")["token"]
    client = EdgeClient(settings_for(tmp_path, api_url(api_server), client_id="site-b", token=token))
    with pytest.raises(ScaleoutError) as stopped:
        run(client.run(handle_signals=False))
    assert str(stopped.value) == (
        "--client-id is site-b but the credential belongs to client site-a; "
        "start the client without --client-id"
    )


def test_an_enrolled_client_keeps_its_credential_and_a_used_up_secret_is_refused(
    tmp_path: Path, api_server: ApiServer
) -> None:
    make_package(tmp_path / "pkg")
    with api_server.client(ADMIN) as admin:
        secret = admin.create_enrollment("fleet", uses=1)["secret"]
    enrolled = settings_for(
        tmp_path, api_url(api_server), client_id=None, enroll_secret=secret, assign_timeout=0.2
    )
    first = EdgeClient(enrolled)
    with pytest.raises(AssignmentError):
        run(first.run(handle_signals=False))
    kept = (tmp_path / "work" / CREDENTIAL_FILE).read_text().strip()
    assert api_server.statestore.credentials.list({"kind": "client"}).items[0].client_id == first.client_id
    again = EdgeClient(enrolled)  # the secret is used up now: the kept credential is what it runs on
    with pytest.raises(AssignmentError):
        run(again.run(handle_signals=False))
    assert again.client_id == first.client_id
    assert (tmp_path / "work" / CREDENTIAL_FILE).read_text().strip() == kept

    newcomer = EdgeClient(replace(enrolled, work_dir=tmp_path / "other"))
    with pytest.raises(CredentialError) as refused:
        run(newcomer.run(handle_signals=False))
    assert str(refused.value) == (
        "enrollment refused (401: the enrollment secret has been used up; ask an operator for a new one "
        "(`scaleout client enrollment create`)); start the client with a valid --enroll-secret or a --token"
    )
