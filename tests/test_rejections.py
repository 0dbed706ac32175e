"""Every rejection reason the combiner and controller give maps to its own kind, the same for the
combiner's metric label and the session stats; none of them falls to "other"."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from scaleout.aggregation.npzfile import read_specs, write_npz
from scaleout.combiner.bounds import bound_update
from scaleout.combiner.updates import UpdateRejected, check_arrays, check_spec, parse_meta
from scaleout.rejections import KINDS, rejection_kind

# The reasons as combiner/rounds.py, fedbuff.py, training.py, validations and controller/rounds.py,
# async_session.py write them, ids and numbers filled in.
WRITTEN = [
    # combiner/rounds.py _admit and _check_and_fold (sync rounds)
    (
        "update for round r1 arrived while no round is running at combiner c (stale update); not averaged",
        "stale",
    ),
    (
        "update for round r0 (session s) arrived while round r1 (session s) is running (stale update); "
        "not averaged",
        "stale",
    ),
    ("update arrived after round r1 ended; not averaged", "stale"),
    ("client a was not selected for round r1", "not_selected"),
    ("client a left round r1; not averaged", "client_left"),
    ("duplicate update from client a for round r1; only its first report counts", "duplicate"),
    ("update answers task 'x', not the task y published to client a for round r1", "wrong_task"),
    ("update was trained from model 'm0', round r1 trains model m1", "wrong_model"),
    (
        "model_update_id 'u' is unknown: no upload with that id from client a (Upload the update with "
        "call metadata model-id and client-id first)",
        "unknown_upload",
    ),
    ("folding the update failed: [Errno 28] No space left on device", "aggregation_failed"),
    # combiner/rounds.py task_status and combiner/training.py (a selected client that left)
    ("task failed on client a: reading its data timed out after 3 s", "task_failed"),
    ("task t1 was not published to client a", "wrong_task"),
    ("client a already reported for round r1", "duplicate"),
    (
        "client a left round r1 before reporting: its task stream closed (the client stopped, lost its "
        "connection or did not answer keepalive pings)",
        "client_left",
    ),
    # combiner/fedbuff.py (async sessions)
    (
        "update answers async task 'c1' (session s) while no async session runs at combiner c "
        "(stale update); not averaged",
        "stale",
    ),
    (
        "update answers task 'c1', which is not in flight in async session s at combiner c (stale update); "
        "not averaged",
        "stale",
    ),
    ("duplicate update from client a for task c1; only its first report counts", "duplicate"),
    ("update was trained from model 'm0', its task trains version 3 (model m3)", "wrong_model"),
    ("update arrived after async session s ended at combiner c (stale update); not averaged", "stale"),
    (
        "stale update: trained on version 3, the current version is 9 and max_staleness is 5; not averaged",
        "stale",
    ),
    (
        "task c1 timed out after 60 s (task_timeout) before its update arrived and its slot went to "
        "another client (stale update); not averaged",
        "timeout",
    ),
    (
        "client a left with task c1 in flight: its task stream closed; not averaged (stale update)",
        "client_left",
    ),
    ("client a already reported task c1", "duplicate"),
    # combiner/rounds.py validations
    ("client is not connected", "client_left"),
    ("no validation by the timeout of 30 s", "timeout"),
    # controller/rounds.py and controller/async_session.py
    ("its combiner's round failed: combiner c: round r1 timed out after 30 s", "combiner_failed"),
    ("its combiner's stream ended before a flush: combiner c is unavailable", "combiner_failed"),
    ("not averaged: version 4: server step failed: array 0 has no values", "aggregation_failed"),
]


@pytest.mark.parametrize(("reason", "label"), WRITTEN)
def test_each_written_reason_has_its_kind(reason: str, label: str) -> None:
    assert rejection_kind(reason).label == label


def _rejection(check: Callable[[], object]) -> str:
    with pytest.raises(UpdateRejected) as error:
        check()
    return str(error.value)


@pytest.mark.parametrize(
    "meta",
    [
        "not json",
        "[]",
        '{"loss": 1}',
        '{"num_examples": "3"}',
        '{"num_examples": 0}',
        '{"num_examples": 101}',
        '{"training_metadata": {"num_examples": true}}',
    ],
)
def test_every_metadata_rejection_is_metadata(meta: str) -> None:
    assert rejection_kind(_rejection(lambda: parse_meta(meta, 100))).label == "metadata"


def test_every_array_rejection_is_arrays(tmp_path: Path) -> None:
    """Shape, dtype, array count, NaN/inf, a value too large to average, an unreadable file."""
    model = tmp_path / "model.npz"
    write_npz(model, [np.zeros((2, 3))])
    specs = read_specs(model)
    wrong = {
        "shape": [np.zeros((3, 2))],
        "dtype": [np.zeros((2, 3), dtype=np.float32)],
        "count": [np.zeros((2, 3)), np.zeros(1)],
        "nan": [np.full((2, 3), np.nan)],
        "inf": [np.full((2, 3), np.inf)],
        "huge": [np.full((2, 3), np.finfo(np.float64).max)],
    }
    reasons = []
    for name, arrays in wrong.items():
        path = tmp_path / f"{name}.npz"
        write_npz(path, arrays)
        reasons.append(_rejection(lambda path=path: check_arrays(path, specs)))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    reasons.append(_rejection(lambda: check_arrays(garbage, specs)))
    reasons.append(_rejection(lambda: check_spec("0", read_specs(tmp_path / "shape.npz")[0], specs[0])))
    assert [rejection_kind(r).label for r in reasons] == ["arrays"] * 8, reasons


def test_an_update_over_the_norm_bound_is_norm_and_titled_update_norm(tmp_path: Path) -> None:
    model, update = tmp_path / "model.npz", tmp_path / "update.npz"
    write_npz(model, [np.zeros(4)])
    write_npz(update, [np.full(4, 10.0)])
    reason = _rejection(lambda: bound_update(update, model, read_specs(model), 1.0, clip=False))
    kind = rejection_kind(reason)
    assert (kind.label, kind.title) == ("norm", "update norm")


def test_an_unknown_reason_is_other() -> None:
    kind = rejection_kind("the combiner was struck by lightning")
    assert (kind.label, kind.title) == ("other", "other")


def test_labels_and_titles_are_unique() -> None:
    """One label (metric) and one title (stats) per kind, so neither view merges two kinds."""
    assert len({k.label for k in KINDS}) == len({k.title for k in KINDS}) == len(KINDS)


def test_the_session_stats_keep_their_kind_names() -> None:
    """The stats' JSON keys from before one list served both views still name the same kinds."""
    titles = {k.label: k.title for k in KINDS}
    assert {titles[label] for label in ("stale", "timeout", "client_left", "norm", "task_failed")} == {
        "stale",
        "timeout",
        "client left",
        "update norm",
        "task failed",
    }
