"""FEDn 0.33's APIClient and Scaleout 1.1's client drive a whole session against our API, unmodified.

Each client runs in its own venv (.venv-fedn, .venv-official; `make compat-venvs`) as a separate
process (tests/e2e/api_client_driver.py) against real `scaleout api`, `scaleout combiner` and two
`scaleout client start` processes training the deterministic package of tests/packages.py: train adds
one to every weight and reports 7 examples, validate reports the mean of the first array.
"""

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scaleout.compute_package import create_package
from scaleoututil.helpers.helpers import get_helper
from tests.e2e.federation import TEST_ENV, Federation, federation
from tests.packages import NUM_EXAMPLES, model_package

pytestmark = pytest.mark.timeout(300)

DRIVER = Path(__file__).with_name("api_client_driver.py")
PYTHONS = {"fedn": "SCALEOUT_TEST_FEDN_PYTHON", "scaleout": "SCALEOUT_TEST_OFFICIAL_PYTHON"}
SEED = [np.zeros(3), np.ones((2, 2))]
ROUNDS = 2
ADMIN_TOKEN = "api-clients-admin-token"
CLIENTS = 2
helper = get_helper("numpyhelper")


@pytest.fixture(params=sorted(PYTHONS))
def kind(request: pytest.FixtureRequest) -> str:
    variable = PYTHONS[request.param]
    if not os.environ.get(variable):
        pytest.skip(f"{variable} is unset: `make test` sets it, after `make compat-venvs` builds the venv")
    return request.param


@pytest.fixture(params=["open", "token"])
def fed(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Federation]:
    """A federation without auth, or with an admin token (every process of ours gets it)."""
    db, models = f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models"
    env = {**TEST_ENV, "SCALEOUT_API_TOKEN": ADMIN_TOKEN} if request.param == "token" else TEST_ENV
    with federation(tmp_path, db, models, env) as fed:
        yield fed


def drive(fed: Federation, kind: str, *args: str) -> dict[str, Any]:
    """Run one step of the driver with the other project's client; its printed answer, parsed."""
    token = fed.env.get("SCALEOUT_API_TOKEN", "")
    env = {
        **os.environ,
        "SCALEOUT_TOKEN_CACHE_DIR": str(fed.root / "token-cache"),  # not the user's cached tokens
        "SCALEOUT_AUTH_TOKEN": "",  # Scaleout's refresh token: its login flow is not what is tested here
        "FEDN_AUTH_TOKEN": token,
        "SCALEOUT_API_TOKEN": token,
    }
    # abspath, not resolve: make sets a relative path, and the venv's python is a symlink out of the venv.
    command = [os.path.abspath(os.environ[PYTHONS[kind]]), str(DRIVER), kind, str(fed.api_port), *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=fed.root, timeout=120)
    assert done.returncode == 0, f"{kind} driver {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_api_client_of_fedn_or_scaleout_runs_a_session_end_to_end(kind: str, fed: Federation) -> None:
    tgz = create_package(model_package(fed.root), output_dir=fed.root)
    seed_path = fed.root / "seed.npz"
    helper.save(SEED, str(seed_path))

    uploaded = drive(fed, kind, "setup", str(tgz), str(seed_path), str(fed.root / "downloaded.tgz"))

    package, seed = uploaded["package"], uploaded["seed"]
    assert uploaded["active_package"]["id"] == package["id"]
    assert uploaded["checksum"] == {"checksum": package["sha256"]}
    assert seed["model_id"] == seed["id"] and seed["parent_id"] is None
    assert fed.api.get_active_package()["sha256"] == package["sha256"]
    assert uploaded["download"]["success"] is True
    assert (fed.root / "downloaded.tgz").read_bytes() == tgz.read_bytes()

    fed.start_combiner()
    for index in range(CLIENTS):
        fed.start_client(f"client-{index}")
    fed.wait_for_clients(CLIENTS)

    started = drive(fed, kind, "start")

    session_id = started["session_id"]
    assert started["status"] == "Started", started
    assert started["seed_model_id"] == seed["id"]  # the latest model, found with X-Sort-* headers
    assert (started["config"]["rounds"], started["config"]["min_clients"]) == (ROUNDS, CLIENTS)
    assert fed.api.wait_for_session(session_id, 180)["status"] == "Finished"

    read = drive(fed, kind, "read", session_id, str(fed.root / "active.npz"))

    rounds = sorted(fed.api.get_rounds(session_id=session_id)["result"], key=lambda r: r["index"])
    round_models = [r["model_id"] for r in rounds]
    assert len(round_models) == ROUNDS
    # The active model is the last round's, not the seed: X-Limit/X-Sort-Key/X-Sort-Order are honoured.
    assert read["active_model"]["model_id"] == round_models[-1]
    # The trail, seed first (X-Reverse) and ending with the active model (include_self).
    assert [m["model_id"] for m in read["trail"]["result"]] == [seed["id"], *round_models]
    assert sorted(m["id"] for m in read["models"]["result"]) == sorted(round_models)
    assert read["models_count"] == {"count": 1 + ROUNDS}
    assert read["session"]["session_id"] == session_id and read["finished"] is True
    assert read["session_by_name"]["session_id"] == session_id
    assert [r["model_id"] for r in sorted(read["rounds"]["result"], key=lambda r: r["index"])] == round_models
    # Each client validated each round's model: its mean is the round number (train adds one each round).
    validations = read["validations"]["result"]
    assert read["validations"]["count"] == CLIENTS * ROUNDS
    by_model = {
        model: sorted(v["metrics"]["mean"] for v in validations if v["model_id"] == model)
        for model in round_models
    }
    assert by_model == {round_models[0]: [1.0, 1.0], round_models[1]: [2.0, 2.0]}
    assert {v["client_id"] for v in read["validations_of_model"]["result"]} == {"client-0", "client-1"}
    assert read["validations_of_model"]["count"] == CLIENTS
    assert read["statuses"]["count"] > 0
    assert {s["session_id"] for s in read["statuses"]["result"]} == {session_id}
    assert sorted(c["id"] for c in read["clients"]["result"]) == ["client-0", "client-1"]
    assert sorted(c["id"] for c in read["active_clients"]["result"]) == ["client-0", "client-1"]
    assert [c["name"] for c in read["combiners"]["result"]] == ["combiner"]
    assert read["client_config"]["checksum"] == package["sha256"]
    assert read["client_config"]["discover_port"] == fed.api_port
    assert read["controller"] == {"state": "idle"}
    # The model it downloaded is the seed plus one per round, averaged over clients of 7 examples each.
    assert read["download"]["success"] is True
    downloaded = helper.load(str(fed.root / "active.npz"))
    for array, start in zip(downloaded, SEED, strict=True):
        np.testing.assert_allclose(array, start + ROUNDS, rtol=0, atol=1e-6)
    assert all(c["num_examples"] == NUM_EXAMPLES for r in rounds for c in r["clients"])
