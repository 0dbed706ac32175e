"""The unmodified official Scaleout Edge client (scaleout==1.1.0 from PyPI, in its own venv) trains in a
federation of ours, started with its own CLI as its users start it.

In dispatcher mode (``scaleout client start --dispatcher``: the package's scaleout.yaml entry points as
commands, as ours run them) it trains next to one of our clients on one package. Read from its source
(scaleout/client/dispatcher_client.py): train gets IN as its ZIP container (metadata.json +
training_model.bin, the npz we sent), and what train writes to OUT may be a plain npz, which it wraps
in a container to upload. The package below reads either kind of IN, so both clients run it unchanged.

In its default importer mode it imports the package's startup.py and calls ``startup(edge_client)``,
which registers Python callbacks; our client runs commands only, so such a package is the official
client's alone, and that test runs it alone.
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scaleout.certs import create_certificates
from scaleoututil.helpers.helpers import get_helper
from tests.e2e.federation import TEST_ENV, Federation, Process, federation, make_package

pytestmark = pytest.mark.timeout(300)

OFFICIAL_PYTHON = os.environ.get("SCALEOUT_TEST_OFFICIAL_PYTHON", "")
if OFFICIAL_PYTHON:
    # make sets a relative path; the client runs in its own folder. abspath, not resolve: the venv's
    # python is a symlink to the base interpreter, and following it would leave the venv.
    OFFICIAL_PYTHON = os.path.abspath(OFFICIAL_PYTHON)
else:
    pytest.skip(
        "SCALEOUT_TEST_OFFICIAL_PYTHON is unset: `make test` sets it to .venv-official/bin/python "
        "(built by `make compat-venvs`)",
        allow_module_level=True,
    )

helper = get_helper("numpyhelper")

# Reads IN as an npz (our client) or as the official client's ZIP container; adds E2E_K, reports E2E_N.
READ_MODEL = """
import io, json, os, sys, zipfile
import numpy as np

def load(path):
    with zipfile.ZipFile(path) as archive:
        if "metadata.json" in archive.namelist():  # the official client's container
            path = io.BytesIO(archive.read("training_model.bin"))
    with np.load(path) as npz:
        return [npz[str(i)] for i in range(len(npz.files))]
"""
TRAIN = (
    READ_MODEL
    + """
weights = load(sys.argv[1])
k = float(os.environ["E2E_K"])
np.savez(sys.argv[2], **{str(i): w + np.asarray(k, dtype=w.dtype) for i, w in enumerate(weights)})
with open(sys.argv[2] + "-metadata", "w") as f:
    json.dump({"num_examples": int(os.environ["E2E_N"])}, f)
"""
)
VALIDATE = (
    READ_MODEL
    + """
weights = load(sys.argv[1])
with open(sys.argv[2], "w") as f:
    json.dump({"mean": float(np.mean(weights[0]))}, f)
"""
)
SEED = [np.zeros((4, 3), dtype=np.float32), np.arange(5, dtype=np.float64)]
OURS, OFFICIAL = "ours", "official-1"
# (add, num_examples): ours adds 1 with 10 examples, the official client 3 with 30: +2.5 a round.
SHIFTS = {OURS: ("1", "10"), OFFICIAL: ("3", "30")}
ROUND_SHIFT = (1 * 10 + 3 * 30) / 40


def start_official_client(fed: Federation, *options: str, env: dict[str, str] | None = None) -> Process:
    """`scaleout client start` of the official client, with the options and variables a user sets."""
    extra_env = env or {}
    home = fed.root / OFFICIAL
    home.mkdir(parents=True, exist_ok=True)
    bin_dir = str(Path(OFFICIAL_PYTHON).parent)
    k, n = SHIFTS[OFFICIAL]
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("SCALEOUT_")},
        **extra_env,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",  # as `source .venv/bin/activate` does
        "VIRTUAL_ENV": str(Path(bin_dir).parent),
        "SCALEOUT_HOME_DIR": str(home),  # its token cache, instead of ~/.scaleout
        "SCALEOUT_CLIENT_TASK_POLLING_INTERVAL": "1",  # seconds between polls; 5 by default
        "E2E_K": k,
        "E2E_N": n,
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        OFFICIAL_PYTHON, "-m", "scaleout", "client", "start",
        "--api-url", fed.api_url, "--client-id", OFFICIAL, "--name", OFFICIAL,
        "--remote-package", *options,
    ]  # fmt: skip
    log_path = fed.root / "logs" / f"{OFFICIAL}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home)
    process = fed.processes[OFFICIAL] = Process(OFFICIAL, popen, log_path)
    return process


def start_federation(fed: Federation) -> str:
    """Package and seed, a combiner and our client; returns the seed's model id."""
    fed.api.set_active_package(make_package(fed.root, TRAIN, VALIDATE))
    seed_path = fed.root / "seed.npz"
    helper.save(SEED, str(seed_path))
    seed_id = fed.api.set_active_model(seed_path)
    fed.start_combiner()
    k, n = SHIFTS[OURS]
    fed.start_client(OURS, extra_env={"E2E_K": k, "E2E_N": n})
    return seed_id


def check_two_rounds(fed: Federation, session: dict[str, Any], seed_id: str) -> list[dict[str, Any]]:
    assert session["status"] == "Finished", session
    rounds = fed.api.get_rounds(session_id=session["id"], sort_key="index")["result"]
    assert [r["status"] for r in rounds] == ["Finished", "Finished"]
    for round_ in rounds:
        by_client = {c["client_id"]: (c["num_examples"], c["delivery"]) for c in round_["clients"]}
        assert by_client == {OURS: (10, "stream"), OFFICIAL: (30, "poll")}
        assert round_["rejected"] == []
    trail = fed.api.get_model_trail(rounds[-1]["model_id"])
    assert [m["id"] for m in trail] == [seed_id] + [r["model_id"] for r in rounds]
    path = fed.api.download_model(rounds[-1]["model_id"], fed.root / "final.npz")
    final = helper.load(str(path))
    assert [a.dtype for a in final] == [a.dtype for a in SEED]
    for array, seed in zip(final, SEED, strict=True):
        np.testing.assert_array_equal(array, seed + 2 * ROUND_SHIFT)  # 5.0: exact in float32
    return rounds


def stores(root: Path) -> tuple[str, str]:
    return f"sqlite:///{root}/statestore.db", f"file://{root}/models"


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Federation]:
    with federation(
        tmp_path, f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models", TEST_ENV
    ) as fed:
        yield fed


def test_the_official_client_trains_two_rounds_beside_ours_weighted_by_its_examples(plain: Federation):
    seed_id = start_federation(plain)
    official = start_official_client(plain, "--dispatcher")
    plain.wait_for_clients(2)

    session_id = plain.api.start_session(rounds=2, min_clients=2, validate=True, round_timeout=120)
    session = plain.api.wait_for_session(session_id, 240)

    rounds = check_two_rounds(plain, session, seed_id)
    validations = plain.api.get_validations(session_id=session_id)["result"]
    official_means = sorted(v["metrics"]["mean"] for v in validations if v["client_id"] == OFFICIAL)
    assert official_means == [ROUND_SHIFT, 2 * ROUND_SHIFT]  # it validated each new global model
    assert len(validations) == 2 * len(rounds)
    assert official.popen.poll() is None, official.log()[-3000:]
    log = official.log()
    assert "Successfully initialized GRPC connection" in log  # Announce's version check passed
    assert "Using combiner-reported grpc_secure=False" in log  # /clients/add told it to dial plaintext


ADMIN = "official-test-admin-token"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Federation]:
    env = {**TEST_ENV, "SCALEOUT_API_TOKEN": ADMIN}
    with federation(tmp_path, *stores(tmp_path), env) as fed:
        yield fed


def test_the_official_client_trains_with_a_client_credential_as_its_token(secured: Federation):
    seed_id = start_federation(secured)
    credential = secured.api.create_client_token(OFFICIAL, OFFICIAL)
    official = start_official_client(secured, "--dispatcher", "--token", credential["token"])
    secured.wait_for_clients(2)

    session_id = secured.api.start_session(rounds=2, min_clients=2, validate=False, round_timeout=120)
    session = secured.api.wait_for_session(session_id, 240)

    check_two_rounds(secured, session, seed_id)
    assert official.popen.poll() is None, official.log()[-3000:]
    assert "Access token refreshed successfully" in official.log()  # /api/auth/refresh answered


# Importer mode: startup(edge_client) registers callbacks that get and return ScaleoutModel objects.
STARTUP = """
from scaleoututil.helpers.helpers import get_helper
from scaleoututil.utils.model import ScaleoutModel

helper = get_helper("numpyhelper")


def startup(client):
    def train(model, settings):
        weights = model.get_training_model(helper)
        client.log_metric({"train_loss": 0.25})
        updated = ScaleoutModel.from_training_model([w + 3 for w in weights], helper)
        return updated, {"training_metadata": {"num_examples": 30}}

    def validate(model):
        return {"mean": float(model.get_training_model(helper)[0].mean())}

    client.set_train_callback(train)
    client.set_validate_callback(validate)
"""


def test_the_official_client_in_importer_mode_trains_and_its_logged_metrics_are_stored(plain: Federation):
    package = plain.root / "importer-package"
    package.mkdir()
    (package / "scaleout.yaml").write_text("entry_points:\n  startup: startup.py\n")
    (package / "startup.py").write_text(STARTUP)
    plain.api.set_active_package(package)
    seed_path = plain.root / "seed.npz"
    helper.save(SEED, str(seed_path))
    plain.api.set_active_model(seed_path)
    plain.start_combiner()
    official = start_official_client(plain)  # no --dispatcher: importer mode, its default
    plain.wait_for_clients(1)

    session_id = plain.api.start_session(rounds=2, min_clients=1, validate=True, round_timeout=120)
    session = plain.api.wait_for_session(session_id, 240)

    assert session["status"] == "Finished", session
    rounds = plain.api.get_rounds(session_id=session_id, sort_key="index")["result"]
    assert [[(c["client_id"], c["num_examples"], c["delivery"]) for c in r["clients"]] for r in rounds] == [
        [(OFFICIAL, 30, "poll")]
    ] * 2
    final = helper.load(str(plain.api.download_model(rounds[-1]["model_id"], plain.root / "final.npz")))
    for array, seed in zip(final, SEED, strict=True):
        np.testing.assert_array_equal(array, seed + 6)
    records = plain.api.get_validations(session_id=session_id)["result"]
    logged = sorted(
        (r["round_id"], r["metrics"]["train_loss"]) for r in records if "train_loss" in r["metrics"]
    )
    assert logged == sorted((r["id"], 0.25) for r in rounds)  # log_metric in each round's train
    means = sorted(r["metrics"]["mean"] for r in records if "mean" in r["metrics"])
    assert means == [3.0, 6.0]
    assert official.popen.poll() is None, official.log()[-3000:]


def test_the_official_client_enrolls_with_its_cli_and_starts_from_its_token_cache(secured: Federation):
    secured.api.set_active_package(make_package(secured.root, TRAIN, VALIDATE))
    seed_path = secured.root / "seed.npz"
    helper.save(SEED, str(seed_path))
    secured.api.set_active_model(seed_path)
    secured.start_combiner()
    secret = secured.api.create_enrollment("fleet", uses=1)["secret"]
    home = secured.root / OFFICIAL
    home.mkdir()
    enroll = [OFFICIAL_PYTHON, "-m", "scaleout", "client", "enroll", "--enrollment-token", secret]
    enroll += ["-u", secured.api_url, "--client-id", OFFICIAL, "--no-config"]
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "SCALEOUT_HOME_DIR": str(home)}

    enrolled = subprocess.run(
        enroll, env=env, cwd=home, capture_output=True, text=True, timeout=60, check=False
    )

    assert enrolled.returncode == 0, enrolled.stderr
    assert enrolled.stdout.splitlines()[-1] == OFFICIAL  # after its warning on storing the token
    official = start_official_client(secured, "--dispatcher")  # no --token: the cached credential
    secured.wait_for_clients(1)
    session_id = secured.api.start_session(rounds=1, min_clients=1, validate=False, round_timeout=120)
    session = secured.api.wait_for_session(session_id, 240)
    assert session["status"] == "Finished", (session, official.log()[-3000:])
    (round_,) = secured.api.get_rounds(session_id=session_id)["result"]
    assert [(c["client_id"], c["num_examples"]) for c in round_["clients"]] == [(OFFICIAL, 30)]


def test_the_official_client_dials_a_tls_combiner_it_is_told_of(tmp_path: Path):
    """grpc_secure is true for a TLS combiner; the user gives the CA as the official client reads it."""
    certs = create_certificates(tmp_path / "certs", []).folder
    ca = str(certs / "ca.pem")
    env = {
        **TEST_ENV,
        "SCALEOUT_TLS_CERT": str(certs / "server.pem"),
        "SCALEOUT_TLS_KEY": str(certs / "server-key.pem"),
        "SCALEOUT_TLS_CA": ca,
    }
    with federation(tmp_path, *stores(tmp_path), env) as fed:
        fed.api.set_active_package(make_package(fed.root, TRAIN, VALIDATE))
        seed_path = fed.root / "seed.npz"
        helper.save(SEED, str(seed_path))
        fed.api.set_active_model(seed_path)
        fed.start_combiner()
        trust = {"REQUESTS_CA_BUNDLE": ca, "SCALEOUT_GRPC_ROOT_CERT_PATH": ca}  # its API and gRPC CAs
        official = start_official_client(fed, "--dispatcher", env=trust)
        fed.wait_for_clients(1)

        session_id = fed.api.start_session(rounds=1, min_clients=1, validate=False, round_timeout=120)
        session = fed.api.wait_for_session(session_id, 240)

        assert session["status"] == "Finished", (session, official.log()[-3000:])
        (round_,) = fed.api.get_rounds(session_id=session_id)["result"]
        assert [(c["client_id"], c["delivery"]) for c in round_["clients"]] == [(OFFICIAL, "poll")]
        assert "Using combiner-reported grpc_secure=True" in official.log()
