"""The client's identity: given, or generated once and kept in the work dir."""

from pathlib import Path

import pytest

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
