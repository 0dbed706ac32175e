"""What an async session cannot do is refused at create time (422), each with what to do instead."""

import httpx
import pytest

from tests.api.conftest import ApiServer

ASYNC = {"mode": "async", "max_versions": 3}
REFUSED = {
    "robust-aggregator": (
        {"aggregator": "trimmed_mean", "aggregator_kwargs": {"beta": 0.2}},
        "Value error, aggregator trimmed_mean cannot run in an async session: it needs every update of a "
        "round at once, and async folds each update as it arrives; use fedavg or a server optimizer "
        "(fedavgm, fedadam, fedyogi, fedadagrad), or mode sync",
    ),
    "krum": (
        {"aggregator": "krum", "min_clients": 5},
        "Value error, aggregator krum cannot run in an async session: it needs every update of a round "
        "at once, and async folds each update as it arrives; use fedavg or a server optimizer "
        "(fedavgm, fedadam, fedyogi, fedadagrad), or mode sync",
    ),
    "dp": (
        {"aggregator": "fedadam", "aggregator_kwargs": {"dp_noise_multiplier": 1.0, "dp_clip_norm": 2.0}},
        "Value error, aggregator_kwargs dp_clip_norm, dp_noise_multiplier: central DP cannot be used in "
        "an async session (its accounting assumes rounds of sampled clients); remove the dp_* kwargs or "
        "use mode sync",
    ),
    "server-lr-with-optimizer": (
        {"aggregator": "fedyogi", "server_lr": 0.5},
        "Value error, server_lr 0.5 applies to fedavg only; fedyogi steps with its own "
        "aggregator_kwargs.server_lr: set that and leave server_lr at 1",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_async_cannot_do_is_422_saying_what_to_do_and_not_stored(
    server: ApiServer, http: httpx.Client, case: str
):
    config, message = REFUSED[case]

    response = http.post("/sessions/", json={"config": {**ASYNC, **config}})

    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body", "config"]
    assert detail["msg"] == message
    assert server.statestore.sessions.count() == 0


@pytest.mark.parametrize("case", list(REFUSED))
def test_the_same_settings_are_accepted_in_a_sync_session(server: ApiServer, http: httpx.Client, case: str):
    config, _ = REFUSED[case]

    response = http.post("/sessions/", json={"config": config})

    assert response.status_code == 201, response.text


def test_server_lr_with_fedavg_and_an_optimizer_with_its_own_server_lr_are_accepted(http: httpx.Client):
    fedavg = {**ASYNC, "server_lr": 0.5}
    fedadam = {**ASYNC, "aggregator": "fedadam", "aggregator_kwargs": {"server_lr": 0.5}}

    for config in (fedavg, fedadam):
        response = http.post("/sessions/", json={"config": config})
        assert response.status_code == 201, response.text
        assert response.json()["config"]["mode"] == "async"
