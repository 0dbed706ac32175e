"""The client sends its token on every gRPC call, and a combiner refusing the token stops it at once.

A real combiner (started with a token) on loopback; the API is the double, which assigns it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from scaleout.client.edge import EdgeClient, Unauthenticated
from scaleout.combiner.auth import TOKEN_HELP
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
