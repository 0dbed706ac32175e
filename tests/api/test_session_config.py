"""A session config is checked at create time by the rules the combiner applies to each round."""

import httpx
import pytest

from scaleout.combiner.bounds import round_settings_error
from scaleout.proto import scaleout_pb2 as pb
from tests.api.conftest import ApiServer

BAD = {
    "timeout-string-inf": ({"round_timeout": "inf"}, "round_timeout", "Input should be a valid number"),
    "timeout-1e308": (
        {"round_timeout": 1e308},
        "round_timeout",
        "Input should be less than or equal to 604800",
    ),
    "timeout-zero": ({"round_timeout": 0}, "round_timeout", "Input should be greater than 0"),
    "min-clients-2**70": (
        {"min_clients": 2**70},
        "min_clients",
        "Input should be less than or equal to 1000000",
    ),
    "unknown-aggregator": (
        {"aggregator": "nope"},
        "aggregator",
        "Value error, 'nope' is not a known aggregator; use one of: fedavg, fedavgm, fedadam, fedyogi, "
        "fedadagrad, median, trimmed_mean, krum, multi_krum",
    ),
    "helper-path": (
        {"helper": "../../etc/passwd"},
        "helper",
        "Value error, '../../etc/passwd' is not a known helper; use one of: numpyhelper",
    ),
    "rounds-true": ({"rounds": True}, "rounds", "Input should be a valid integer"),
    "rounds-string": ({"rounds": "5"}, "rounds", "Input should be a valid integer"),
    "validate-1": ({"validate": 1}, "validate", "Input should be a valid boolean"),
    "norm-negative": ({"max_update_norm": -1.0}, "max_update_norm", "Input should be greater than 0"),
    "retries-huge": (
        {"round_retries": 10**6},
        "round_retries",
        "Input should be less than or equal to 1000",
    ),
    "kwarg-unknown": (
        {"aggregator": "fedadam", "aggregator_kwargs": {"lr": 0.1}},
        "aggregator_kwargs",
        "Value error, aggregator_kwargs: 'lr' is not a kwarg of fedadam; its kwargs are: server_lr, beta1, "
        "tau, beta2, dp_clip_norm, dp_noise_multiplier, dp_delta",
    ),
    "trimmed-mean-beta-half": (
        {"aggregator": "trimmed_mean", "aggregator_kwargs": {"beta": 0.5}},
        "aggregator_kwargs",
        "Value error, aggregator_kwargs.beta must be a number >= 0 and < 0.5, got 0.5 "
        "(fraction trimmed at each end)",
    ),
    "server-lr-negative": (
        {"aggregator": "fedyogi", "aggregator_kwargs": {"server_lr": -1.0}},
        "aggregator_kwargs",
        "Value error, aggregator_kwargs.server_lr must be a number > 0 and <= 1e+06, got -1.0 "
        "(eta: server learning rate)",
    ),
    "krum-f-too-large": (
        {"aggregator": "krum", "min_clients": 4, "aggregator_kwargs": {"f": 1}},
        "aggregator_kwargs",
        "Value error, aggregator_kwargs.f of 1 needs at least 2f + 3 = 5 updates per round (Krum); "
        "min_clients is 4: raise min_clients or lower f",
    ),
    "dp-noise-without-clip": (
        {"aggregator_kwargs": {"dp_noise_multiplier": 1.0}},
        "aggregator_kwargs",
        "Value error, aggregator_kwargs.dp_clip_norm is required with dp_noise_multiplier: noise is "
        "scaled to the clip",
    ),
    "kwargs-string": (
        {"aggregator_kwargs": {"lr": "0.1"}},
        "aggregator_kwargs",
        "Input should be a valid number",
    ),
}


def assert_no_session(server: ApiServer) -> None:
    assert server.statestore.sessions.count() == 0


@pytest.mark.parametrize("case", list(BAD))
def test_a_config_the_combiner_would_refuse_is_422_naming_the_field_and_not_stored(
    server: ApiServer, http: httpx.Client, case: str
):
    config, field, message = BAD[case]

    for path in ("/sessions/", "/sessions/start"):
        response = http.post(path, json={"config": config})
        assert response.status_code == 422, response.text
        [detail] = response.json()["detail"]
        assert detail["loc"][:3] == ["body", "config", field]
        assert detail["msg"] == message
    assert_no_session(server)


def test_an_infinite_round_timeout_is_refused(server: ApiServer, http: httpx.Client):
    """JSON has no inf, but Python's parser reads Infinity: it must not be stored (as null)."""
    body = '{"config": {"round_timeout": Infinity}}'
    response = http.post("/sessions/", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "Input should be a finite number"
    assert_no_session(server)


def test_requested_clients_below_min_clients_is_refused(server: ApiServer, http: httpx.Client):
    response = http.post("/sessions/", json={"config": {"min_clients": 3, "requested_clients": 2}})

    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == (
        "Value error, requested_clients (2) is below min_clients (3): no round could succeed"
    )
    assert_no_session(server)


def test_large_client_settings_are_refused(server: ApiServer, http: httpx.Client):
    response = http.post("/sessions/", json={"config": {"client_settings": {"data": "x" * 70_000}}})

    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == (
        "Value error, is 70012 bytes of JSON, more than 65536; it goes with every train task: "
        "pass data by reference"
    )
    assert_no_session(server)


def test_a_422_does_not_echo_a_large_input_back(server: ApiServer, http: httpx.Client):
    name = "n" * 1_000_000

    response = http.post("/sessions/", json={"name": name, "config": {"helper": "h" * 100_000}})

    assert response.status_code == 422
    assert len(response.content) < 2_000
    details = response.json()["detail"]
    assert [d["loc"] for d in details] == [["body", "name"], ["body", "config", "helper"]]
    assert details[0]["input"].endswith("... (1000002 characters, cut)")
    assert details[1]["msg"].startswith("String should have at most 200 characters")
    assert_no_session(server)


def test_the_combiner_refuses_a_round_config_by_the_same_rules():
    config = pb.RoundConfig(session_id="s", round_id="r", model_id="m", round_timeout=10.0)
    assert round_settings_error(config) is None
    cases = {
        "helper": ("../../etc/passwd", "'../../etc/passwd' is not a known helper; use one of: numpyhelper"),
        "aggregator": (
            "nope",
            "'nope' is not a known aggregator; use one of: fedavg, fedavgm, fedadam, fedyogi, fedadagrad, "
            "median, trimmed_mean, krum, multi_krum",
        ),
        "round_timeout": (1e308, "must be a number of seconds > 0 and <= 604800, got 1e+308"),
        "min_clients": (2**31, "must be an integer >= 0 and <= 1000000, got 2147483648"),
    }
    for field, (value, message) in cases.items():
        bad = pb.RoundConfig()
        bad.CopyFrom(config)
        setattr(bad, field, value)
        assert round_settings_error(bad) == f"RoundConfig.{field} {message}", field


def test_the_combiner_refuses_aggregator_kwargs_by_the_same_rules():
    config = pb.RoundConfig(
        session_id="s", round_id="r", model_id="m", round_timeout=10.0, aggregator="trimmed_mean"
    )
    config.aggregator_kwargs["beta"] = 0.6
    assert round_settings_error(config) == (
        "RoundConfig.aggregator_kwargs.beta must be a number >= 0 and < 0.5, got 0.6 "
        "(fraction trimmed at each end)"
    )
    config.aggregator_kwargs["beta"] = 0.2
    assert round_settings_error(config) is None
