"""How the federation's records look in a terminal: rich tables with short ids and local times.

Everything here takes the API's JSON dicts, so a table never shows what --json would not. A table fits
the terminal (or COLUMNS when piped) by leaving out its least important columns, named under it, rather
than cutting cells: a status, a date or a metric name is shown whole or not at all.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

HEX_ID = re.compile(r"^[0-9a-f]{32}$")
SHORT_ID = 8  # the random tail of a time-ordered id: ids made the same second share their head
PIPE_WIDTH = 200  # rich's 80 columns would fold ids when output goes to a file or a pipe


def console(stderr: bool = False) -> Console:
    """A console for now's stdout (or stderr): the terminal's width, or COLUMNS, or wide when piped
    so rows stay greppable."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS", "").isdigit() else PIPE_WIDTH
    return Console(file=stream, width=width, soft_wrap=False)


def short_id(value: Any) -> str:
    """The last characters of a 32-hex id ("…1a2b3c4d"); other values (client names) unchanged."""
    if value is None:
        return ""
    text = str(value)
    return f"…{text[-SHORT_ID:]}" if HEX_ID.match(text) else text


def when(value: str | None) -> str:
    """An ISO timestamp from the API as local time to the second."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""
    seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    return f"{seconds:.2f}"


def size(value: int | None) -> str:
    if value is None:
        return ""
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return str(value)


def number(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


# How much a column matters when the terminal is narrow: lower ones are left out first.
ALWAYS, HIGH, MEDIUM, LOW = 9, 5, 3, 1
FLEXIBLE_WIDTH = 24  # a free-text column (errors) wraps within what is left, at least this wide
HEADER_LINE = 10  # metric names longer than this wrap in the header at their "_" and "."


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[Mapping[str, Any]], str]
    justify: str = "left"
    keep: int = MEDIUM
    flexible: bool = False  # free text that may wrap; every other column is never wrapped nor cut
    wrap_header: bool = False  # a metric name: on several header lines when the table is too wide


def field(name: str, render: Callable[[Any], str] = number) -> Callable[[Mapping[str, Any]], str]:
    return lambda row: render(row.get(name))


def records_table(
    title: str, rows: Iterable[Mapping[str, Any]], columns: Sequence[Column], width: int | None = None
) -> Table:
    """The rows as a table of the columns that fit `width` (all without one); the rest named below."""
    rows = list(rows)
    cells = [[column.cell(row) for column in columns] for row in rows]
    if width and sum(needed_width(c, cells, i) for i, c in enumerate(columns)) + 1 > width:
        columns = [replace(c, header=wrapped_header(c.header)) if c.wrap_header else c for c in columns]
    kept = fitting(columns, cells, width) if width else list(range(len(columns)))
    table = Table(title=title, title_justify="left", caption_justify="left")
    for index in kept:
        column = columns[index]
        table.add_column(
            column.header,
            justify=column.justify,  # type: ignore[arg-type]
            no_wrap=not column.flexible,
            min_width=None if column.flexible else natural_width(column, cells, index),
        )
    for row_cells in cells:
        table.add_row(*(row_cells[index] for index in kept))
    left_out = [columns[i].header.replace("\n", "") for i in range(len(columns)) if i not in kept]
    if left_out:
        table.caption = f"left out to fit {width} columns: {', '.join(left_out)} (--json shows every field)"
    return table


def print_records(title: str, rows: Iterable[Mapping[str, Any]], columns: Sequence[Column]) -> None:
    """A records table on stdout, fitted to its width."""
    out = console()
    out.print(records_table(title, rows, columns, out.width))


def print_page(title: str, page: Mapping[str, Any], columns: Sequence[Column], skip: int) -> None:
    """One page of a list answer (``count``, ``result``) as a table, then which records these are of
    how many and the ``--skip`` of the next page, when there is more than this page."""
    print_records(title, page["result"], columns)
    shown, total = len(page["result"]), page["count"]
    if skip == 0 and shown == total:
        return
    note = f"{title} {skip + 1}-{skip + shown} of {total}" if shown else f"no {title} past {skip} of {total}"
    if skip + shown < total:
        note += f"; the next page: --skip {skip + shown}"
    console().print(note)


def natural_width(column: Column, cells: Sequence[Sequence[str]], index: int) -> int:
    widths = [len(line) for line in column.header.split("\n")]
    widths += [len(line) for row in cells for line in row[index].split("\n")]
    return max(widths)


def needed_width(column: Column, cells: Sequence[Sequence[str]], index: int) -> int:
    """Terminal columns the column takes, with its padding and rule."""
    natural = natural_width(column, cells, index)
    return (min(natural, FLEXIBLE_WIDTH) if column.flexible else natural) + 3


def fitting(columns: Sequence[Column], cells: Sequence[Sequence[str]], width: int) -> list[int]:
    """Indexes of the columns to show: all that fit `width`, leaving out the least kept (rightmost first)."""

    def needed(index: int) -> int:
        return needed_width(columns[index], cells, index)

    kept = list(range(len(columns)))
    by_importance = sorted(kept, key=lambda i: (columns[i].keep, -i))
    dropped: list[int] = []
    while sum(needed(i) for i in kept) + 1 > width and by_importance:
        candidate = by_importance.pop(0)
        if columns[candidate].keep >= ALWAYS:
            break
        kept.remove(candidate)
        dropped.append(candidate)
    for candidate in reversed(dropped):  # a narrower one left out early may fit in what a wide one freed
        if sum(needed(i) for i in kept) + needed(candidate) + 1 <= width:
            kept.append(candidate)
    return sorted(kept)


def wrapped_header(name: str) -> str:
    """A long metric name on several header lines, broken after its "_" and "." ("test_\naccuracy"),
    so columns stay narrow and names stay whole and distinct."""
    if len(name) <= HEADER_LINE:
        return name
    lines = [""]
    for part in re.split(r"(?<=[_.])", name):
        if lines[-1] and len(lines[-1]) + len(part) > HEADER_LINE:
            lines.append("")
        lines[-1] += part
    return "\n".join(lines)


def key_value_table(title: str, values: Mapping[str, Any]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for name, value in values.items():
        table.add_row(name, number(value) if not isinstance(value, dict | list) else str(value))
    return table


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metrics as dotted columns: {"acc": {"top1": 1}} → {"acc.top1": 1}."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def numeric_metric_names(validations: Iterable[Mapping[str, Any]]) -> list[str]:
    names = {
        name
        for validation in validations
        for name, value in flatten(validation.get("metrics", {})).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    return sorted(names)


def mean_metrics(validations: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[str]:
    """Per metric, the mean over the given validations (clients), blank where none reported it."""
    flat = [flatten(v.get("metrics", {})) for v in validations]
    cells = []
    for name in names:
        values = [m[name] for m in flat if isinstance(m.get(name), int | float)]
        cells.append(f"{statistics.fmean(values):.4f}" if values else "")
    return cells


def client_labels(clients: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """How people know each client: its name, with its short id where another client has that name."""
    clients = list(clients)
    names = [c.get("name") or "" for c in clients]
    labels = {}
    for client, name in zip(clients, names, strict=True):
        short = short_id(client["id"])
        if not name:
            labels[client["id"]] = short
        else:
            labels[client["id"]] = name if names.count(name) == 1 else f"{name} ({short})"
    return labels


def round_number(round_: Mapping[str, Any]) -> str:
    """Rounds are numbered from 1 for people; the stored index counts from 0."""
    return str(round_["index"] + 1)


def update_count(round_: Mapping[str, Any]) -> str:
    return str(len(round_.get("clients", [])))


def rejected_count(round_: Mapping[str, Any]) -> str:
    return str(len(round_.get("rejected", [])))


def example_count(round_: Mapping[str, Any]) -> str:
    return str(sum(c.get("num_examples", 0) for c in round_.get("clients", [])))


def round_seconds(round_: Mapping[str, Any]) -> str:
    return duration(round_.get("started_at"), round_.get("finished_at"))


def is_async(record: Mapping[str, Any]) -> bool:
    """A session, or a round of one, in async (FedBuff) mode: its rounds are model versions."""
    return record.get("config", {}).get("mode") == "async"


def staleness_range(round_: Mapping[str, Any]) -> str:
    """min/mean/max staleness of the updates folded into an async version ("0/0.50/1"); blank if none."""
    taus = [c["staleness"] for c in round_.get("clients", []) if c.get("staleness") is not None]
    if not taus:
        return ""
    return f"{min(taus)}/{statistics.fmean(taus):.2f}/{max(taus)}"


def staleness_mean_max(stats: Mapping[str, Any]) -> str:
    """Mean/max staleness of a session's folded updates, from GET /sessions/{id}/stats ("0.67/2")."""
    staleness = stats["staleness"]
    return f"{number(staleness['mean'])}/{staleness['max']}" if staleness["updates"] else ""


def async_progress_table(
    title: str, session: Mapping[str, Any], stats: Mapping[str, Any], live: Mapping[str, Any] | None
) -> Table:
    """An async session's live line: versions done, versions/min over the session and its last ones,
    updates per version, staleness mean/max, rejected updates, and from the controller's live progress
    (when it runs the session) the buffer's fill and the clients training now."""
    live = live if live and live.get("mode") == "async" else None
    # Short headers, so the line fits 80 columns; the caption says what they mean.
    table = Table(title=title, title_justify="left", caption_justify="left")
    headers = (
        "version",
        "per min",
        f"last {stats['window']}",
        "upd/ver",
        "τ mean/max",
        "rej.",
        "buffer",
        "busy",
    )
    for header in headers:
        table.add_column(header)
    table.caption = (
        f"versions per minute over the session and its last {stats['window']}; updates per version; "
        "staleness τ; updates rejected; the buffer's updates; clients training now"
    )
    table.add_row(
        session_done(session),
        per_minute(stats["versions_per_second"]),
        per_minute(stats["recent_versions_per_second"]),
        number(stats["updates_per_version"]),
        staleness_mean_max(stats),
        str(sum(stats["rejected"].values())),
        f"{live['buffer_fill']}/{live['buffer_size']}" if live else "",
        str(live["in_flight"]) if live else "",
    )
    return table


def per_minute(per_second: float | None) -> str:
    return "" if per_second is None else f"{per_second * 60:.2f}"


def session_done(session: Mapping[str, Any]) -> str:
    """Rounds (or async versions) done out of the session's target: "3/5", or "3" for an async session
    that ends by time only."""
    config = session["config"]
    target = config.get("max_versions") if is_async(session) else config["rounds"]
    return f"{session['rounds_done']}/{target}" if target else str(session["rounds_done"])


def session_extent(session: Mapping[str, Any]) -> str:
    """How long the session runs, for people: "5 rounds", "async: 40 versions or 600 s"."""
    config = session["config"]
    if not is_async(session):
        return f"{config['rounds']} rounds"
    ends = [f"{config['max_versions']} versions"] if config.get("max_versions") else []
    ends += [f"{config['max_duration']:g} s"] if config.get("max_duration") else []
    return f"async: {' or '.join(ends)}"


STALENESS_HEADER = "staleness\nmin/mean/max"


def rounds_table(
    rounds: Sequence[Mapping[str, Any]], validations: Sequence[Mapping[str, Any]], width: int | None = None
) -> Table:
    """Per round: status, updates, examples, time, model, the clients' mean validation metrics and the
    error of a failed round."""
    names = numeric_metric_names(validations)
    means = {
        round_["id"]: mean_metrics([v for v in validations if v.get("round_id") == round_["id"]], names)
        for round_ in rounds
    }

    def metric(position: int) -> Callable[[Mapping[str, Any]], str]:
        return lambda round_: means[round_["id"]][position]

    versions = any(is_async(round_) for round_ in rounds)
    columns = [
        Column("version" if versions else "round", round_number, "right", ALWAYS),
        Column("status", field("status"), keep=ALWAYS),
        Column("updates", update_count, "right", HIGH),
        *([Column(STALENESS_HEADER, staleness_range, "right", HIGH)] if versions else []),
        Column("rejected", rejected_count, "right", MEDIUM),
        Column("examples", example_count, "right"),
        Column("seconds", round_seconds, "right", MEDIUM),
        Column("model", field("model_id", short_id), keep=LOW),
        *(Column(name, metric(i), "right", HIGH, wrap_header=True) for i, name in enumerate(names)),
        Column("error", lambda r: r.get("error") or "", keep=HIGH, flexible=True),
    ]
    if not any(round_.get("error") for round_ in rounds):
        columns.pop()
    title = "Versions" if versions else "Rounds"
    return records_table(f"{title} (validation metrics: mean over clients)", rounds, columns, width)
