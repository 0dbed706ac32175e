"""The kinds of rejected updates: one classification of the reasons the combiner and controller give.

A rejection's reason names ids and numbers, so the texts themselves do not group. Its kind does: the
combiner counts rejected updates under the kind's ``label`` (scaleout_combiner_updates_rejected, a
bounded Prometheus label), and GET /sessions/{id}/stats counts a session's rejections under its
``title``. Both read this one list, so they agree on every message. The whole reasons stay in each
Round's rejected[].
"""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class RejectionKind:
    """A kind of rejection: its metric label, its name in the session stats, the reasons it matches."""

    label: str
    title: str
    pattern: re.Pattern[str]


def _kind(label: str, title: str, pattern: str) -> RejectionKind:
    return RejectionKind(label, title, re.compile(pattern))


# First match wins. Reasons that quote another error come first (a failed task quotes the client's
# error, which may say "timed out"), and a timed-out task or a client that left before the stale
# updates, since the combiner also calls those updates stale.
KINDS: tuple[RejectionKind, ...] = (
    _kind("task_failed", "task failed", r"^task failed on client"),
    _kind("combiner_failed", "combiner failed", r"^its combiner's (round failed|stream ended)"),
    _kind("aggregation_failed", "aggregation failed", r"^folding the update failed|server step failed"),
    _kind("timeout", "timeout", r"\btimed out after\b|^no validation by the timeout"),
    _kind("client_left", "client left", r"\bleft round\b|\bleft with task\b|^client is not connected"),
    _kind("stale", "stale", r"\(stale update\)|^stale update|arrived after .* ended"),
    _kind("not_selected", "not selected", r"was not selected for round"),
    _kind("duplicate", "duplicate", r"^duplicate update|already reported"),
    _kind("wrong_task", "wrong task", r"^update answers task|was not published to client"),
    _kind("wrong_model", "wrong model", r"^update was trained from model"),
    _kind("unknown_upload", "unknown upload", r"^model_update_id .* is unknown"),
    _kind("metadata", "metadata", r"^meta\b|num_examples|metadata"),
    _kind("norm", "update norm", r"\bmax_update_norm\b"),
    _kind("arrays", "arrays", r"^array \S+ |^update has \d+ array|\bnpz\b"),
)
OTHER = RejectionKind("other", "other", re.compile(r"(?!)"))


def rejection_kind(reason: str) -> RejectionKind:
    """The kind of a rejection reason (without SendModelUpdate's "rejected: " prefix); OTHER if unknown."""
    return next((kind for kind in KINDS if kind.pattern.search(reason)), OTHER)
