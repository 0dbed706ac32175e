"""Listing and inspecting a federation's records: tables show the seeded records, --json is the API's
answer exactly, and the short ids tables show are accepted back."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from scaleout.store.entities import Client as ClientRecord
from scaleout.store.entities import (
    ClientRoundResult,
    Combiner,
    Round,
    Session,
    SessionConfig,
    Validation,
)
from scaleoututil.helpers.helpers import get_helper
from tests.api.conftest import ApiServer
from tests.cli.conftest import api_url, as_json, ok, run_script

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def federation_records(server: ApiServer, tmp_path) -> dict[str, str]:
    """One finished two-round session with validations, two clients and a combiner, as stored records."""
    store = server.statestore
    seed = get_helper("numpyhelper").save([[0.0, 1.0]], str(tmp_path / "seed.npz"))
    with server.client() as api:
        seed_id = api.set_active_model(seed)
    session = store.sessions.add(
        Session(
            name="nightly",
            status="Finished",
            config=SessionConfig(rounds=2, aggregator="fedavg"),
            seed_model_id=seed_id,
            rounds_done=2,
            started_at=T0,
            finished_at=T0 + timedelta(seconds=9),
        )
    )
    ids = {"session": session.id, "seed": seed_id}
    for index, accuracy in enumerate((0.5, 0.75)):
        round_ = store.rounds.add(
            Round(
                session_id=session.id,
                index=index,
                status="Finished",
                clients=[ClientRoundResult(client_id="edge-a", num_examples=30)],
                started_at=T0 + timedelta(seconds=4 * index),
                finished_at=T0 + timedelta(seconds=4 * index + 3.5),
            )
        )
        ids[f"round{index}"] = round_.id
        for client, offset in (("edge-a", 0.0), ("edge-b", 0.1)):
            store.validations.add(
                Validation(
                    model_id=seed_id,
                    client_id=client,
                    session_id=session.id,
                    round_id=round_.id,
                    metrics={"accuracy": accuracy + offset, "loss": {"test": 1 - accuracy}},
                )
            )
    store.clients.add(ClientRecord(id="edge-a", name="edge A", status="online", combiner_id="combiner"))
    store.clients.add(ClientRecord(id="edge-b", name="edge B", status="offline"))
    store.combiners.add(
        Combiner(id="combiner", name="combiner", address="10.0.0.7", port=12080, client_count=1)
    )
    return ids


def test_session_list_shows_the_session_and_json_is_the_apis_answer(server, federation_records):
    table = ok(server, "session", "list").output
    assert "nightly" in table and "Finished" in table and "2/2" in table
    assert f"…{federation_records['session'][-8:]}" in table
    assert federation_records["session"] not in table  # shortened; --json has it whole

    with server.client() as api:
        assert as_json(server, "session", "list") == api.get_sessions()


def test_session_show_has_config_rounds_and_mean_metrics_per_round(server, federation_records):
    session_id = federation_records["session"]
    output = ok(server, "session", "show", session_id).output
    assert "nightly" in output and "aggregator" in output and "fedavg" in output
    assert "accuracy" in output and "loss.test" in output
    # mean over the two clients: round 1 (0.5, 0.6), round 2 (0.75, 0.85)
    assert "0.5500" in output and "0.8000" in output
    assert "3.50" in output  # round seconds

    with server.client() as api:
        assert as_json(server, "session", "show", session_id) == {
            "session": api.get_session(session_id),
            "rounds": api.get_rounds(session_id=session_id, sort_key="index"),
            "validations": api.get_validations(session_id=session_id),
        }


def test_a_short_id_as_tables_show_it_is_accepted(server, federation_records):
    short = f"…{federation_records['session'][-8:]}"
    assert as_json(server, "session", "show", short)["session"]["id"] == federation_records["session"]


def test_round_list_filters_by_session(server, federation_records):
    output = ok(server, "round", "list", "--session-id", federation_records["session"]).output
    assert f"…{federation_records['round0'][-8:]}" in output
    assert f"…{federation_records['round1'][-8:]}" in output
    with server.client() as api:
        assert as_json(server, "round", "list") == api.get_rounds()


def test_validation_list_flattens_metrics_into_columns(server, federation_records):
    output = ok(server, "validation", "list", "--session-id", federation_records["session"]).output
    header = next(line for line in output.splitlines() if "accuracy" in line)
    assert "loss.test" in header
    assert "0.85" in output and "0.25" in output
    with server.client() as api:
        assert as_json(server, "validation", "list", "--model-id", federation_records["seed"]) == (
            api.get_validations(model_id=federation_records["seed"])
        )


def test_client_and_combiner_lists(server, federation_records):
    clients = ok(server, "client", "list").output
    assert "edge A" in clients and "edge B" in clients and "online" in clients and "offline" in clients
    combiners = ok(server, "combiner", "list").output
    assert "10.0.0.7:12080" in combiners
    with server.client() as api:
        assert as_json(server, "client", "list") == api.get_clients()
        assert as_json(server, "combiner", "list") == api.get_combiners()


def test_model_list_and_show(server, federation_records):
    seed = federation_records["seed"]
    assert f"…{seed[-8:]}" in ok(server, "model", "list").output
    assert seed in ok(server, "model", "show", seed).output
    with server.client() as api:
        assert as_json(server, "model", "list") == api.get_models()
        assert as_json(server, "model", "show", seed) == api.get_model(seed)
        assert as_json(server, "model", "list", "--session-id", federation_records["session"]) == (
            api.get_models(session_id=federation_records["session"])
        )


def test_the_installed_script_prints_json_equal_to_the_api(server, federation_records):
    result = run_script("session", "list", "--json", env={"SCALEOUT_API_URL": api_url(server)})
    assert result.returncode == 0, result.stderr
    with server.client() as api:
        assert json.loads(result.stdout) == api.get_sessions()
