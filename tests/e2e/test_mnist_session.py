"""A 3-round session on the mnist-numpy example, on the embedded stores and on MongoDB + S3.

The compute package is uploaded through the API and each client downloads, checks and unpacks it, as a
deployed client does; the seed comes from the package's own build entry point.
"""

import math
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scaleout.store.uri import S3Credentials
from tests.e2e.federation import SCALEOUT, Federation, federation

pytestmark = pytest.mark.timeout(300)

PACKAGE = Path(__file__).resolve().parents[2] / "examples" / "mnist-numpy" / "client"
CLIENTS = 2
ROUNDS = 3


@pytest.fixture(params=["sqlite-files", "mongodb-s3"])
def fed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Federation]:
    if request.param == "sqlite-files":
        stores = (f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models", {})
    else:
        mongo_uri: str = request.getfixturevalue("mongo_uri")
        database: str = request.getfixturevalue("mongo_database")
        endpoint: str = request.getfixturevalue("s3_endpoint")
        credentials: S3Credentials = request.getfixturevalue("s3_credentials")
        bucket: str = request.getfixturevalue("s3_bucket")
        env = {
            "SCALEOUT_S3_ACCESS_KEY": credentials.access_key,
            "SCALEOUT_S3_SECRET_KEY": credentials.secret_key,
        }
        stores = (
            f"{mongo_uri.rstrip('/')}/{database}",
            f"s3://{bucket}?endpoint={endpoint}&secure=false",
            env,
        )
    db, models, env = stores
    with federation(tmp_path, db, models, env) as fed:
        yield fed


def test_a_three_round_mnist_session_commits_a_trail_and_validations(fed: Federation) -> None:
    subprocess.run([SCALEOUT, "run", "build", "--path", str(PACKAGE), "--output", str(fed.root)], check=True)
    fed.api.set_active_package(PACKAGE)
    seed_id = fed.api.set_active_model(fed.root / "seed.npz")
    fed.start_combiner()
    for partition in range(CLIENTS):
        fed.start_client(f"client-{partition}", partition=partition, partitions=CLIENTS)
    fed.wait_for_clients(CLIENTS)

    session_id = fed.api.start_session(rounds=ROUNDS, min_clients=CLIENTS, round_timeout=60)
    session = fed.api.wait_for_session(session_id, 240)

    assert session["status"] == "Finished", session
    rounds = fed.api.get_rounds(session_id=session_id, sort_key="index")["result"]
    assert [r["status"] for r in rounds] == ["Finished"] * ROUNDS
    assert all(len(r["clients"]) == CLIENTS and r["clients"][0]["num_examples"] > 0 for r in rounds)
    trail = fed.api.get_model_trail(rounds[-1]["model_id"])
    assert [m["id"] for m in trail] == [seed_id] + [r["model_id"] for r in rounds]
    validations = fed.api.get_validations(session_id=session_id)["result"]
    assert sorted((v["round_id"], v["client_id"]) for v in validations) == sorted(
        (r["id"], f"client-{p}") for r in rounds for p in range(CLIENTS)
    )
    for validation in validations:
        metrics = validation["metrics"]
        assert set(metrics) >= {"training_accuracy", "test_accuracy", "training_loss", "test_loss"}
        assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    accuracy = {r["id"]: [] for r in rounds}
    for validation in validations:
        accuracy[validation["round_id"]].append(validation["metrics"]["test_accuracy"])
    first, last = (sum(accuracy[r["id"]]) / CLIENTS for r in (rounds[0], rounds[-1]))
    assert last > first
