"""The client's settings and identity (given, or generated once and kept in the work dir)."""

from pathlib import Path

import pytest

from scaleout.client.model_transfer import Pace
from scaleout.client.settings import CLIENT_ID_FILE, MIN_KEEPALIVE_TIME, ClientSettings, resolve_client_id
from scaleout.combiner.server import SERVER_OPTIONS
from scaleout.errors import InvalidId


def test_generated_client_id_is_kept_in_the_work_dir_across_restarts(tmp_path: Path) -> None:
    first = resolve_client_id(tmp_path / "work", None)
    assert len(first) == 32
    assert resolve_client_id(tmp_path / "work", None) == first
    assert (tmp_path / "work" / CLIENT_ID_FILE).read_text().strip() == first


def test_given_client_id_wins_and_is_not_written(tmp_path: Path) -> None:
    assert resolve_client_id(tmp_path, "edge-1") == "edge-1"
    assert not (tmp_path / CLIENT_ID_FILE).exists()


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "x" * 201, "sp ace"])
def test_client_id_that_could_escape_a_path_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidId, match="invalid client id"):
        resolve_client_id(tmp_path, bad)


def test_chunk_size_outside_the_wire_contract_is_refused() -> None:
    with pytest.raises(ValueError, match="1-4 MiB"):
        ClientSettings(chunk_size=8 * 1024 * 1024)


def test_a_keepalive_more_frequent_than_combiners_expect_is_refused() -> None:
    with pytest.raises(ValueError) as error:
        ClientSettings(keepalive_time=4.0)
    assert str(error.value) == (
        "keepalive_time must be >= 5 s, the least interval at which combiners expect an idle client's pings "
        "(they tolerate sooner ones, but the pings of every client load the combiner); set it to 5 or more, "
        "got 4"
    )


def test_the_keepalive_bound_is_the_combiners_ping_policy() -> None:
    """What the message says: combiners expect pings at most every MIN_KEEPALIVE_TIME s and, with
    unlimited strikes, close no connection for sooner ones (no too_many_pings GOAWAY)."""
    options = dict(SERVER_OPTIONS)
    assert options["grpc.http2.min_recv_ping_interval_without_data_ms"] == MIN_KEEPALIVE_TIME * 1000
    assert options["grpc.http2.max_ping_strikes"] == 0


def test_a_transfer_may_take_the_deadline_plus_its_bytes_at_the_minimum_rate() -> None:
    assert Pace(floor=30.0, rate=250_000.0, queue=30.0).seconds(100_000_000) == 430.0
