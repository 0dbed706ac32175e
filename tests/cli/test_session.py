"""`scaleout session start|stop`: the config is stored exactly as given; with --wait the live progress
ends in the rounds table and metrics (a real federation), and a failed session exits non-zero."""

from pathlib import Path

import pytest

from scaleoututil.helpers.helpers import get_helper
from tests.cli.conftest import as_json, fails, ok, run_script
from tests.e2e.federation import federation, make_package

TRAIN = """
import sys
from scaleoututil.helpers.helpers import get_helper, save_metadata

helper = get_helper("numpyhelper")
weights = helper.load(sys.argv[1])
save_metadata({"num_examples": 10}, sys.argv[2])
helper.save([w + 1 for w in weights], sys.argv[2])
"""

VALIDATE = """
import sys
import numpy as np
from scaleoututil.helpers.helpers import get_helper, save_metrics

weights = get_helper("numpyhelper").load(sys.argv[1])
save_metrics({"mean": float(np.mean(weights[0])), "detail": {"count": 3}}, sys.argv[2])
"""


def upload_seed(api, path: Path) -> str:
    return api.set_active_model(get_helper("numpyhelper").save([[0.0, 1.0, 2.0]], str(path)))


def test_session_start_stores_the_config_exactly(server, tmp_path):
    with server.client() as api:
        seed_id = upload_seed(api, tmp_path / "seed.npz")

    output = ok(
        server, "session", "start", "--rounds", "3", "--round-timeout", "42.5", "--min-clients", "2",
        "--requested-clients", "4", "--buffer-size", "3", "--aggregator", "fedavg", "--no-validate",
        "--helper", "numpyhelper", "--model-id", seed_id, "--name", "exact", "--no-wait",
        "--max-update-norm", "12.5", "--clip-updates",
        "--round-retries", "2", "--retry-timeout", "30",
    ).output  # fmt: skip

    with server.client() as api:
        session = api.get_sessions()["result"][0]
    assert session["name"] == "exact" and session["seed_model_id"] == seed_id
    assert session["config"] == {
        "rounds": 3,
        "round_timeout": 42.5,
        "min_clients": 2,
        "requested_clients": 4,
        "buffer_size": 3,
        "aggregator": "fedavg",
        "aggregator_kwargs": {},
        "validate": False,
        "helper": "numpyhelper",
        "client_settings": {},
        "round_retries": 2,
        "retry_timeout": 30.0,
        "max_update_norm": 12.5,
        "clip_updates": True,
        # the async fields, unset: SessionConfig's defaults
        "mode": "sync",
        "max_concurrency": None,
        "staleness": "polynomial",
        "staleness_exponent": 0.5,
        "max_staleness": None,
        "max_versions": None,
        "max_duration": None,
        "server_lr": 1.0,
        "validate_every": 1,
    }
    # This API hosts no controller, so nobody runs it: it stays Started, and stop ends it.
    assert f"Session exact ({session['id']}) is Started: 3 rounds" in output
    stopped = as_json(server, "session", "stop", session["id"])
    assert stopped["status"] == "Terminated"


def test_session_start_takes_the_aggregator_and_its_kwargs(server, tmp_path):
    with server.client() as api:
        upload_seed(api, tmp_path / "seed.npz")

    ok(
        server, "session", "start", "--aggregator", "fedadam", "--aggregator-kwarg", "server_lr=0.01",
        "--aggregator-kwarg", "beta2=0.999", "--no-wait",
    )  # fmt: skip

    with server.client() as api:
        config = api.get_sessions()["result"][0]["config"]
    assert (config["aggregator"], config["aggregator_kwargs"]) == (
        "fedadam",
        {"server_lr": 0.01, "beta2": 0.999},
    )


def test_session_start_names_an_out_of_range_kwarg(server, tmp_path):
    with server.client() as api:
        upload_seed(api, tmp_path / "seed.npz")

    message = fails(
        server,
        "session",
        "start",
        "--aggregator",
        "trimmed_mean",
        "--aggregator-kwarg",
        "beta=0.5",
        "--no-wait",
    )

    assert "aggregator_kwargs.beta must be a number >= 0 and < 0.5, got 0.5" in message


@pytest.mark.timeout(240)
def test_session_start_wait_shows_the_rounds_and_metrics_of_a_real_federation(tmp_path):
    with federation(tmp_path, f"sqlite:///{tmp_path}/state.db", f"file://{tmp_path}/models") as fed:
        with fed.api as api:
            api.set_active_package(make_package(tmp_path, TRAIN, VALIDATE))
            upload_seed(api, tmp_path / "seed.npz")
        fed.start_combiner()
        fed.start_client("edge-1")
        fed.wait_for_clients(1)

        result = run_script(
            "session", "start", "--rounds", "2", "--round-timeout", "60", "--wait",
            env={"SCALEOUT_API_URL": fed.api_url},
        )  # fmt: skip

        assert result.returncode == 0, result.stdout + result.stderr
        assert "2/2" in result.stdout and "Finished" in result.stdout
        table = result.stdout[result.stdout.index("Rounds (validation metrics") :]
        assert "mean" in table and "detail.count" in table
        # the seed [0, 1, 2] plus one per round: the means are 2.0 and 3.0
        assert "2.0000" in table and "3.0000" in table
        assert "session" in result.stderr  # the live progress went to stderr


@pytest.mark.timeout(120)
def test_session_start_wait_exits_non_zero_when_the_session_fails(tmp_path):
    with federation(tmp_path, f"sqlite:///{tmp_path}/state.db", f"file://{tmp_path}/models") as fed:
        with fed.api as api:
            upload_seed(api, tmp_path / "seed.npz")

        result = run_script(
            "session", "start", "--rounds", "1", "--round-retries", "0", "--wait", "--api-url", fed.api_url
        )

    assert result.returncode == 1
    assert "Failed" in result.stdout and "no combiner" in result.stdout
