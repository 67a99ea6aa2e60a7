"""Bar charts drawn on the server as inline SVG: no script, no build step, readable without JS."""
from __future__ import annotations

from html import escape
from typing import Sequence

from markupsafe import Markup

# Series colours, also named in app.css's legend.
COLOURS = {"accepted": "#2e7d32", "duplicate": "#f9a825", "rejected": "#c62828", "grams": "#2e7d32"}


def _nice_max(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def stacked_bars(labels: Sequence[str], series: dict[str, Sequence[int]], *, title: str, unit: str = "",
                 width: int = 640, height: int = 220, label_every: int = 1) -> Markup:
    """An SVG of one bar per label, the series stacked in the order given.

    Each bar has a ``<title>`` (the figures, shown on hover) and the chart a
    ``role="img"`` with ``title`` as its accessible name.
    """
    left, bottom, top = 56, 28, 10
    n = max(1, len(labels))
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    top_value = _nice_max(max(totals, default=0))
    plot_h, plot_w = height - bottom - top, width - left - 8
    slot = plot_w / n
    bar_w = max(2.0, slot * 0.7)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">']
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
                     f'{int(top_value * frac):,}{escape(unit)}</text>')
    for i, label in enumerate(labels):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        hover = ", ".join(f"{name} {values[i]:,}" for name, values in series.items())
        parts.append(f'<g class="bar" data-label="{escape(label)}" data-total="{totals[i]}">'
                     f'<title>{escape(label)}: {escape(hover)}{escape(unit)}</title>')
        for name, values in series.items():
            h = plot_h * values[i] / top_value
            if h <= 0:
                continue
            y -= h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{COLOURS.get(name, "#607d8b")}" class="s-{escape(name)}"/>')
        parts.append("</g>")
        if i % label_every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 10}" text-anchor="middle" class="axis">'
                         f'{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
