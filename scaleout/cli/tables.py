"""How the federation's records look in a terminal: rich tables with short ids and local times.

Everything here takes the API's JSON dicts, so a table never shows what --json would not.
"""

from __future__ import annotations

import math
import re
import statistics
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

HEX_ID = re.compile(r"^[0-9a-f]{32}$")
SHORT_ID = 8  # the random tail of a time-ordered id: ids made the same second share their head
PIPE_WIDTH = 200  # rich's 80 columns would fold ids when output goes to a file or a pipe


def console(stderr: bool = False) -> Console:
    """A console for now's stdout (or stderr); wide when not a terminal so rows stay greppable."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPE_WIDTH
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


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[Mapping[str, Any]], str]
    justify: str = "left"


def field(name: str, render: Callable[[Any], str] = number) -> Callable[[Mapping[str, Any]], str]:
    return lambda row: render(row.get(name))


def records_table(title: str, rows: Iterable[Mapping[str, Any]], columns: Sequence[Column]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column.header, justify=column.justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(column.cell(row) for column in columns))
    return table


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


def rounds_table(rounds: Sequence[Mapping[str, Any]], validations: Sequence[Mapping[str, Any]]) -> Table:
    """Per round: status, updates, examples, time, model, and the clients' mean validation metrics."""
    names = numeric_metric_names(validations)
    table = Table(title="Rounds (validation metrics: mean over clients)", title_justify="left")
    for header in ("round", "status", "updates", "rejected", "examples", "seconds", "model", *names):
        table.add_column(header, justify="left" if header in ("status", "model") else "right")
    for round_ in rounds:
        of_round = [v for v in validations if v.get("round_id") == round_["id"]]
        table.add_row(
            str(round_["index"] + 1),
            round_["status"] + (f": {round_['error']}" if round_.get("error") else ""),
            str(len(round_.get("clients", []))),
            str(len(round_.get("rejected", []))),
            str(sum(c.get("num_examples", 0) for c in round_.get("clients", []))),
            duration(round_.get("started_at"), round_.get("finished_at")),
            short_id(round_.get("model_id")),
            *mean_metrics(of_round, names),
        )
    return table
