"""Operations, end to end on real processes: grpc.health.v1 on the combiner, the API's liveness and
readiness, Prometheus metrics of the API and the combiner after a real round, and JSON log lines
carrying session, round and client ids."""

import asyncio
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.federation import SCALEOUT, TEST_ENV, Federation, federation, free_port
from tests.e2e.test_federation import rounds_of, run_session, seeded
from tests.fixtures.s3_server import TEST_ACCESS_KEY, TEST_SECRET_KEY, start_s3_server

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

TOKEN = "operations-admin-token"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def fed(tmp_path: Path) -> Any:
    env = {**TEST_ENV, "SCALEOUT_API_TOKEN": TOKEN, "SCALEOUT_LOG_FORMAT": "json"}
    db, models = f"sqlite:///{tmp_path}/statestore.db", f"file://{tmp_path}/models"
    with federation(tmp_path, db, models, env) as fed:
        yield fed


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def combiner_port(fed: Federation, name: str = "combiner") -> int:
    (combiner,) = [c for c in fed.api.get_combiners()["result"] if c["name"] == name]
    return combiner["port"]


async def _watch_until_not_serving(target: str, process: Any) -> list[int]:
    """Statuses the Watch stream reports: SERVING first, then (after SIGTERM) NOT_SERVING."""
    seen = []
    async with grpc.aio.insecure_channel(target) as channel:
        check = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        seen.append(check.status)
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=60)
        async for answer in watch:
            seen.append(answer.status)
            if answer.status == SERVING:
                process.popen.send_signal(signal.SIGTERM)
            else:
                watch.cancel()
                break
    return seen


def test_combiner_health_is_serving_without_a_token_then_not_serving_on_shutdown(fed: Federation) -> None:
    process = fed.start_combiner()  # the federation has a token: every other RPC needs one
    target = f"127.0.0.1:{combiner_port(fed)}"

    probe = [SCALEOUT, "combiner", "health", "--port", target.rsplit(":", 1)[1], "--grpc-health"]
    result = subprocess.run(probe, capture_output=True, text=True, timeout=60, env={"PATH": ""})
    assert (result.returncode, result.stdout.strip()) == (0, f"combiner at {target} is SERVING")

    assert asyncio.run(_watch_until_not_serving(target, process)) == [SERVING, SERVING, NOT_SERVING]
    assert process.popen.wait(timeout=30) == 0


def test_api_liveness_and_readiness_need_no_token_and_readiness_checks_the_stores(fed: Federation) -> None:
    with httpx.Client(base_url=fed.api_url) as http:
        assert http.get("/api/v1/health/live").json() == {"status": "ok"}
        ready = http.get("/api/v1/health/ready")
        assert (ready.status_code, ready.json()) == (
            200,
            {"status": "ok", "statestore": "ok", "model_repository": "ok"},
        )
        assert http.get("/metrics").status_code == 401  # metrics are the admin's


def test_api_readiness_fails_while_the_model_repository_is_down_and_liveness_does_not(tmp_path: Path) -> None:
    endpoint, stop_s3 = start_s3_server()  # the API's own S3 server, stopped mid-test
    env = {
        **TEST_ENV,
        "SCALEOUT_S3_ACCESS_KEY": TEST_ACCESS_KEY,
        "SCALEOUT_S3_SECRET_KEY": TEST_SECRET_KEY,
    }
    models = f"s3://readiness?endpoint={endpoint}&secure=false"
    fed = Federation(tmp_path, f"sqlite:///{tmp_path}/statestore.db", models, env)
    try:
        fed.start_api()
        with httpx.Client(base_url=fed.api_url, timeout=60) as http:
            assert http.get("/api/v1/health/ready").status_code == 200
            stop_s3()
            ready = http.get("/api/v1/health/ready")
            assert http.get("/api/v1/health/live").json() == {"status": "ok"}
        body = ready.json()
        assert (ready.status_code, body["status"], body["statestore"]) == (503, "error", "ok")
        prefix = f"the model repository s3://readiness?endpoint={endpoint} did not answer: MaxRetryError: "
        assert body["model_repository"].startswith(prefix), body
    except BaseException:
        print(fed.logs())
        raise
    finally:
        fed.stop()
        stop_s3()


def test_metrics_after_a_real_round_count_exactly_what_happened(fed: Federation) -> None:
    seed_id = seeded(fed)
    metrics_port = free_port()
    fed.start_combiner(extra_env={"SCALEOUT_COMBINER_METRICS_PORT": str(metrics_port)})
    for index, mode in enumerate(["", "", "wrong_shape"]):
        fed.start_client(f"client-{index}", extra_env={"E2E_MODE": mode})
    fed.wait_for_clients(3)

    session = run_session(fed, rounds=1, validate=False, min_clients=2, round_timeout=60)
    assert session["status"] == "Finished", session
    (round_,) = rounds_of(fed, session["id"])
    seed_size = fed.api.get_model(seed_id)["size"]

    combiner = samples(httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text)
    assert combiner[("scaleout_combiner_rounds_total", (("result", "ok"),))] == 1
    assert ("scaleout_combiner_rounds_total", (("result", "failed"),)) not in combiner
    assert combiner[("scaleout_combiner_round_seconds_count", ())] == 1
    assert combiner[("scaleout_combiner_updates_accepted_total", ())] == 2
    assert combiner[("scaleout_combiner_updates_rejected_total", (("reason", "arrays"),))] == 1
    assert combiner[("scaleout_combiner_sent_bytes_total", ())] == 3 * seed_size  # each client's download
    assert combiner[("scaleout_combiner_received_bytes_total", ())] > 2 * seed_size  # + the wrong shape
    assert combiner[("scaleout_combiner_clients_connected", ())] == 3
    assert combiner[("scaleout_combiner_task_queue_depth", ())] == 0
    idle = ("transfers_active", "transfers_waiting", "uploads_waiting_for_memory", "spool_held_bytes")
    assert [combiner[(f"scaleout_combiner_{name}", ())] for name in idle] == [0, 0, 0, 0]  # all let go
    assert (
        combiner[("scaleout_statestore_seconds_count", (("entity", "combiners"), ("operation", "upsert")))]
        >= 1
    )

    response = httpx.get(f"{fed.api_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.headers["content-type"].startswith("text/plain")
    api = samples(response.text)
    assert api[("scaleout_rounds", (("status", "Finished"),))] == 1
    assert api[("scaleout_sessions", (("status", "Finished"),))] == 1
    assert api[("scaleout_clients", (("status", "online"),))] == 3
    assert api[("scaleout_combiners", (("status", "online"),))] == 1
    start = (("method", "POST"), ("route", "/api/v1/sessions/start"), ("status", "201"))
    assert api[("scaleout_api_requests_total", start)] == 1
    assert api[("scaleout_statestore_seconds_count", (("entity", "rounds"), ("operation", "add")))] >= 1
    assert api[("scaleout_api_sent_bytes_total", ())] > 0
    assert round_["status"] == "Finished"


def test_json_logs_carry_the_session_round_and_client_ids(fed: Federation) -> None:
    seeded(fed)
    fed.start_combiner()
    fed.start_client("client-0")
    fed.wait_for_clients(1)
    session = run_session(fed, rounds=1, validate=False, min_clients=1)
    assert session["status"] == "Finished", session
    (round_,) = rounds_of(fed, session["id"])
    fed.stop()

    records = [json.loads(line) for line in fed.processes["combiner"].log().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    # A round's records (those of the task it runs in too) carry its session and round ids ...
    round_records = [r for r in records if r.get("round_id") == round_["id"]]
    assert round_records and all(r["session_id"] == session["id"] for r in round_records)
    ended = f"round {round_['id']} (session {session['id']}) at combiner combiner: ok=True"
    assert any(r["message"].startswith(ended) for r in round_records), round_records
    # ... and a client's calls its client id.
    connected = [r for r in records if r["message"] == "client client-0 connected"]
    assert [r.get("client_id") for r in connected] == ["client-0"]
    api_records = [json.loads(line) for line in fed.processes["api"].log().splitlines() if line.strip()]
    assert any(r["logger"] == "uvicorn.access" for r in api_records)
