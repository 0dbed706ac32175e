"""A line chart as a standalone SVG file: what the benchmarks need to plot, without a plotting library.

GitHub and browsers render the file inline (the README embeds it); the numbers themselves go to a CSV
next to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

WIDTH, HEIGHT = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 60  # margins around the plot area
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
TICKS = 6


def nice_ticks(low: float, high: float, count: int = TICKS) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2 or 5 times a power of ten) covering low..high."""
    span = high - low if high > low else 1.0
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    return [first + i * step for i in range(math.ceil((high - first) / step) + 1)]


def line_chart(
    path: Path,
    series: Mapping[str, Sequence[tuple[float, float]]],
    title: str,
    x_label: str,
    y_label: str,
) -> None:
    """Write one polyline (with dots) per named series of (x, y) points, axes from the data's range."""
    points = [p for values in series.values() for p in values]
    x_ticks = nice_ticks(0.0, max((x for x, _ in points), default=1.0))
    y_ticks = nice_ticks(min((y for _, y in points), default=0.0), max((y for _, y in points), default=1.0))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * inner_w

    def sy(y: float) -> float:
        return TOP + inner_h - (y - y0) / (y1 - y0) * inner_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    for x in x_ticks:
        parts.append(
            f'<line x1="{sx(x):.1f}" y1="{TOP}" x2="{sx(x):.1f}" y2="{TOP + inner_h}" stroke="#eee"/>'
        )
        parts.append(f'<text x="{sx(x):.1f}" y="{TOP + inner_h + 18}" text-anchor="middle">{x:g}</text>')
    for y in y_ticks:
        parts.append(
            f'<line x1="{LEFT}" y1="{sy(y):.1f}" x2="{LEFT + inner_w}" y2="{sy(y):.1f}" stroke="#eee"/>'
        )
        parts.append(f'<text x="{LEFT - 8}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    parts += [
        f'<rect x="{LEFT}" y="{TOP}" width="{inner_w}" height="{inner_h}" fill="none" stroke="#444"/>',
        f'<text x="{LEFT + inner_w / 2}" y="{HEIGHT - 18}" text-anchor="middle">{escape(x_label)}</text>',
        f'<text transform="translate(18 {TOP + inner_h / 2}) rotate(-90)" text-anchor="middle">'
        f"{escape(y_label)}</text>",
    ]
    for i, (name, values) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"/>' for x, y in values]
        legend_y = TOP + inner_h - 18 * (len(series) - i)  # bottom right: learning curves end high
        parts.append(
            f'<line x1="{LEFT + inner_w - 150}" y1="{legend_y}" x2="{LEFT + inner_w - 125}" y2="{legend_y}" '
            f'stroke="{color}" stroke-width="3"/>'
        )
        parts.append(f'<text x="{LEFT + inner_w - 118}" y="{legend_y + 4}">{escape(name)}</text>')
    parts.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")
