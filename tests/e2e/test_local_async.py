"""`scaleout local --mode async`: an async (FedBuff) session on mnist-numpy as a user runs it, its piped
lines per version, and its version records (staleness, weights, validate_every)."""

from pathlib import Path

import pytest

from scaleout.api.routes_stats import session_stats
from scaleout.store import open_statestore
from tests.e2e.test_local import leftover_processes, local

pytestmark = pytest.mark.timeout(300)


def test_a_local_async_session_commits_its_versions_and_validates_every_other_one(tmp_path: Path) -> None:
    process = local(
        tmp_path, "--mode", "async", "--buffer-size", "2", "--max-versions", "4", "--validate-every", "2"
    )
    output, _ = process.communicate(timeout=240)

    assert process.returncode == 0, output
    lines = output.splitlines()
    assert "Finished (4/4 versions)" in output and "test_accuracy" in output
    assert any(line.endswith(": async: 4 versions") for line in lines), output
    for version in range(1, 5):  # piped: one line per committed version
        assert sum(line.startswith(f"version {version}/4 committed: ") for line in lines) == 1, output
    store = open_statestore(f"sqlite:///{tmp_path / 'work' / 'statestore.db'}")
    try:
        (session,) = store.sessions.list().items
        versions = store.rounds.list({"session_id": session.id}, sort_key="index").items
        assert [(r.index, r.status) for r in versions] == [(i, "Finished") for i in range(4)]
        for record in versions:
            assert len(record.clients) == 2
            for update in record.clients:  # staleness: versions committed between its base and its fold
                assert update.base_version + update.staleness == record.index
                assert update.staleness_weight == pytest.approx((1 + update.staleness) ** -0.5)
        validated = {v.round_id for v in store.validations.list({"session_id": session.id}).items}
        assert validated == {versions[1].id, versions[3].id}
        stats = session_stats(session, versions)
        assert (stats.versions, stats.updates, stats.staleness.updates) == (4, 8, 8)
    finally:
        store.close()
    assert not leftover_processes(tmp_path / "work")
