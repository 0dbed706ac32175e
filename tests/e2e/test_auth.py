"""End to end with roles: real `scaleout api`, `scaleout combiner` and `scaleout client start` processes.

An operator issues a client credential and an enrollment secret with the CLI; both clients train in a
session; a client credential cannot forge a round at the combiner; revoking a credential stops its
client within seconds; an enrolled client restarts on the credential kept in its work dir.
"""

import json
import os
import subprocess
from pathlib import Path

import grpc
import pytest

from scaleout.proto import scaleout_pb2 as pb
from scaleout.proto import scaleout_pb2_grpc as rpc
from tests.e2e.federation import SCALEOUT, Federation, federation, free_port, wait_until
from tests.e2e.test_federation import ENV, rounds_of, run_session, seeded

pytestmark = pytest.mark.timeout(300)

ADMIN = "federation-secret"


def cli(fed: Federation, *args: str) -> dict:
    """Run `scaleout ARGS --json` as the operator (the admin token in the environment)."""
    done = subprocess.run(
        [SCALEOUT, *args, "--api-url", fed.api_url, "--json"],
        env={**os.environ, **fed.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def start_enrolled_client(fed: Federation, name: str, secret: str) -> None:
    """A client with an enrollment secret and no token at all (not even the operator's)."""
    args = ["client", "start", "--api-url", fed.api_url, "--name", name]
    args += ["--work-dir", str(fed.root / "clients" / name), "--heartbeat-interval", "2"]
    fed._spawn(name, args, {"SCALEOUT_API_TOKEN": "", "SCALEOUT_ENROLL_SECRET": secret})


def online(fed: Federation) -> set[str]:
    return {c["id"] for c in fed.api.get_clients()["result"] if c["status"] == "online"}


def test_client_credentials_issued_used_and_revoked_end_to_end(tmp_path: Path) -> None:
    env = {**ENV, "SCALEOUT_API_TOKEN": ADMIN, "SCALEOUT_COMBINER_CREDENTIAL_REFRESH": "0.5"}
    db, models = f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models"
    with federation(tmp_path, db, models, env) as fed:
        seeded(fed)
        port = free_port()
        fed.start_combiner(port=port)
        site = cli(fed, "client", "token", "create", "--name", "site-a", "--client-id", "site-a")
        enrollment = cli(fed, "client", "enrollment", "create", "--name", "fleet", "--uses", "1")
        assert site["client_id"] == "site-a" and enrollment["uses_left"] == 1

        fed.start_client(
            "site-a", extra_env={"SCALEOUT_CLIENT_TOKEN": site["token"], "SCALEOUT_API_TOKEN": ""}
        )
        start_enrolled_client(fed, "edge", enrollment["secret"])
        clients = fed.wait_for_clients(2)
        enrolled_id = next(c["id"] for c in clients if c["id"] != "site-a")
        assert (fed.root / "clients" / "edge" / "credential").stat().st_mode & 0o077 == 0

        session = run_session(fed, rounds=1, validate=False, min_clients=2)
        assert session["status"] == "Finished", session
        (round_,) = rounds_of(fed, session["id"])
        assert {c["client_id"] for c in round_["clients"]} == {"site-a", enrolled_id}

        # Around the API, straight at the combiner: a client credential cannot run a round.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            forged = pb.RoundConfig(session_id="x", round_id="evil", model_id=session["seed_model_id"])
            call = rpc.ControlStub(channel).StartRound(
                forged, metadata=[("authorization", f"Bearer {site['token']}")], timeout=30
            )
            with pytest.raises(grpc.RpcError) as refused:
                next(call)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert fed.api.get_rounds()["count"] == 1

        revoked = cli(fed, "client", "token", "revoke", site["id"])
        assert revoked["revoked_at"] is not None
        site_a = fed.processes.pop("site-a")  # its exit is the outcome under test
        assert site_a.popen.wait(60) == 1, site_a.log()
        assert "credential was revoked" in site_a.log()
        wait_until(lambda: "site-a" not in online(fed), 60, "site-a to be offline")

        # The enrollment secret is used up: the restarted client comes back on its kept credential.
        fed.processes.pop("edge").stop()
        wait_until(lambda: enrolled_id not in online(fed), 60, "the enrolled client to be offline")
        start_enrolled_client(fed, "edge", enrollment["secret"])
        wait_until(lambda: enrolled_id in online(fed), 60, "the enrolled client to be back")
        assert cli(fed, "client", "enrollment", "list")["result"][0]["uses_left"] == 0
