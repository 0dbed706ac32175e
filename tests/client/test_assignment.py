"""The client's assignment request: which API answers it waits out, and which stop it with a message."""

from __future__ import annotations

import asyncio

import pytest

from scaleout.client.assignment import Assignment, AssignmentError, request_assignment
from scaleout.client.backoff import Backoff
from scaleout.client.rest import open_api
from tests.client.doubles import WAIT, ApiDouble, assigned
from tests.client.test_edge import free_port


def assign(api_url: str, timeout: float | None, token: str | None = None) -> Assignment:
    async def ask() -> Assignment:
        async with open_api(api_url, token) as api:
            backoff = Backoff(initial=0.01, maximum=0.05)
            return await request_assignment(api, "edge-1", "edge one", "remote", backoff, timeout)

    return asyncio.run(asyncio.wait_for(ask(), WAIT))


def test_assignment_waits_out_203_and_503_then_returns_the_combiner() -> None:
    answers = [
        (203, {"message": "no compute package is active yet"}),
        (503, {"detail": "no combiner is online"}),
    ]
    with ApiDouble([*answers, assigned(4242, name="c1", package="remote")]) as api:
        assignment = assign(api.url, timeout=None, token="t0k")
    assert assignment == Assignment("edge-1", "127.0.0.1", 4242, "c1", "remote", "numpyhelper")
    assert len(api.add_calls) == 3
    assert api.add_calls[-1][1]["Authorization"] == "Bearer t0k"


def test_assignment_gives_up_at_the_assign_timeout_naming_the_last_reason() -> None:
    with (
        ApiDouble([(503, {"detail": "no combiner is online"})]) as api,
        pytest.raises(AssignmentError, match=r"within 0.3 s \(--assign-timeout\).*no combiner is online"),
    ):
        assign(api.url, timeout=0.3)
    assert len(api.add_calls) >= 2, "the client should have asked again before giving up"


def test_unreachable_api_is_retried_until_the_assign_timeout() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(AssignmentError, match="is unreachable"):
        assign(url, timeout=0.2)


def test_rejected_token_stops_at_once_with_a_hint() -> None:
    with (
        ApiDouble([(401, {"detail": "invalid or missing API token"})]) as api,
        pytest.raises(AssignmentError, match=r"invalid or missing API token.*--token"),
    ):
        assign(api.url, timeout=None)
    assert len(api.add_calls) == 1


def test_ipv6_combiner_host_is_bracketed_for_grpc() -> None:
    assert Assignment("c", "::1", 12080, "c1", "remote", "numpyhelper").address == "[::1]:12080"


def test_the_api_saying_tls_makes_the_assignment_tls() -> None:
    status, body = assigned(4242, name="c1", package="remote")
    with ApiDouble([(status, {**body, "combiner": {**body["combiner"], "tls": True}})]) as api:
        assert assign(api.url, timeout=None).tls is True
    with ApiDouble([assigned(4242)]) as api:  # an API that predates TLS says nothing: plaintext
        assert assign(api.url, timeout=None).tls is False


def test_a_tls_value_other_than_true_or_false_is_refused_not_read_as_plaintext() -> None:
    status, body = assigned(4242, name="c1", package="remote")
    with (
        ApiDouble([(status, {**body, "combiner": {**body["combiner"], "tls": "yes"}})]) as api,
        pytest.raises(AssignmentError) as refused,
    ):
        assign(api.url, timeout=None)
    assert str(refused.value) == (
        "the API's answer to /clients/add has tls='yes', not true or false; "
        "are the client and the API the same version?"
    )
