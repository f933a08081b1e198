"""A small SVG bar chart, drawn on the server so the charts need no script and no library.

The SVG uses classes and presentation attributes only (the pages' Content-Security-Policy blocks
inline ``style``); colours come from pages.css.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 240
#: Room for the y-axis figures on the left and the bar labels below.
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 12, 30
GAP = 0.2  # of each bar's slot


@dataclass(frozen=True)
class Bar:
    """One bar: its axis ``label``, its ``value`` and a tooltip (``hint``)."""

    label: str
    value: float
    hint: str = ""


def bar_chart(bars: Sequence[Bar], *, title: str, label_every: int = 1,
              width: int = WIDTH, height: int = HEIGHT) -> Markup:
    """An ``<svg>`` with one ``rect.bar`` per bar (heights proportional to the values, on a
    zero baseline) and every ``label_every``-th label under the axis."""
    if any(bar.value < 0 for bar in bars):
        raise ValueError("bar values must not be negative")
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'aria-label="{escape(title)}">', f"<title>{escape(title)}</title>"]
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    base_y = TOP + plot_h
    if not bars:
        parts.append(f'<text class="empty" x="{width / 2:g}" y="{height / 2:g}" '
                     f'text-anchor="middle">No data yet</text></svg>')
        return Markup("".join(parts))
    top = max(bar.value for bar in bars) or 1
    slot = plot_w / len(bars)
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{base_y}" x2="{LEFT + plot_w}" '
                 f'y2="{base_y}"/>')
    parts.append(f'<text class="tick" x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">'
                 f'{escape(_figure(top))}</text>')
    parts.append(f'<text class="tick" x="{LEFT - 6}" y="{base_y}" text-anchor="end">0</text>')
    for i, bar in enumerate(bars):
        bar_h = plot_h * bar.value / top
        x = LEFT + i * slot + slot * GAP / 2
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{base_y - bar_h:.1f}" '
            f'width="{slot * (1 - GAP):.1f}" height="{bar_h:.1f}" '
            f'data-label="{escape(bar.label)}" data-value="{bar.value:g}">'
            f"<title>{escape(bar.hint or f'{bar.label}: {_figure(bar.value)}')}</title></rect>")
        if i % max(label_every, 1) == 0:
            parts.append(f'<text class="label" x="{LEFT + (i + 0.5) * slot:.1f}" '
                         f'y="{base_y + 18}" text-anchor="middle">{escape(bar.label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _figure(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"
