"""The client's settings and identity (given, or generated once and kept in the work dir)."""

from pathlib import Path

import pytest

from scaleout.client.model_transfer import Pace
from scaleout.client.settings import CLIENT_ID_FILE, ClientSettings, resolve_client_id
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


def test_a_keepalive_more_frequent_than_combiners_allow_is_refused() -> None:
    # A combiner answers pings more frequent than every 5 s with a too_many_pings GOAWAY.
    with pytest.raises(ValueError, match=r"keepalive_time must be >= 5 s .*got 4\.0"):
        ClientSettings(keepalive_time=4.0)


def test_a_transfer_may_take_the_deadline_plus_its_bytes_at_the_minimum_rate() -> None:
    assert Pace(floor=30.0, rate=250_000.0).seconds(100_000_000) == 430.0
