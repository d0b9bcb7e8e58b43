"""Small inline SVG charts, generated as text (no JavaScript, render offline)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 760
LABEL_W = 200
VALUE_W = 150
ROW_H = 30
PALETTE = ("#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2")


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its length (in the chart's unit) and the text printed next to it."""

    label: str
    value: float
    text: str
    color: str = PALETTE[0]


def _open(chart_id: str, title: str, height: int, desc: str) -> str:
    return (
        f'<svg id="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" class="chart">'
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>'
    )


def _empty(chart_id: str, title: str, message: str) -> str:
    return (
        _open(chart_id, title, 40, message)
        + f'<text x="0" y="25" class="empty">{escape(message)}</text></svg>'
    )


def bar_chart(
    chart_id: str,
    title: str,
    bars: Sequence[Bar],
    scale_max: float | None = None,
    empty: str = "No data in this period.",
) -> str:
    """Horizontal bars, label on the left, value text on the right."""
    if not bars:
        return _empty(chart_id, title, empty)
    top = scale_max or max((b.value for b in bars), default=0) or 1
    span = WIDTH - LABEL_W - VALUE_W
    parts = [_open(chart_id, title, len(bars) * ROW_H + 10, "; ".join(f"{b.label}: {b.text}" for b in bars))]
    for i, b in enumerate(bars):
        y = i * ROW_H + 5
        w = max(b.value / top * span, 2 if b.value else 0)
        parts.append(
            f'<g class="bar"><title>{escape(b.label)}: {escape(b.text)}</title>'
            f'<text x="{LABEL_W - 10}" y="{y + 19}" text-anchor="end">{escape(_clip(b.label))}</text>'
            f'<rect x="{LABEL_W}" y="{y + 4}" width="{w:.1f}" height="{ROW_H - 10}" rx="3" fill="{b.color}"/>'
            f'<text x="{LABEL_W + w + 8:.1f}" y="{y + 19}">{escape(b.text)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def funnel_chart(chart_id: str, title: str, steps: Sequence[tuple[str, int, str]]) -> str:
    """Centred bars narrowing down the success path; ``steps`` are (label, count, note)."""
    if not steps or not any(count for _, count, _ in steps):
        return _empty(chart_id, title, "No one entered the funnel in this period.")
    row, top = 46, max(count for _, count, _ in steps)
    centre, span = LABEL_W + (WIDTH - LABEL_W - VALUE_W) / 2, WIDTH - LABEL_W - VALUE_W
    desc = "; ".join(f"{label}: {count:,}" for label, count, _ in steps)
    parts = [_open(chart_id, title, len(steps) * row + 10, desc)]
    for i, (label, count, note) in enumerate(steps):
        y, w = i * row + 5, max(count / top * span, 2 if count else 0)
        colour = PALETTE[1] if i == len(steps) - 1 else PALETTE[0]
        parts.append(
            f'<g class="step"><title>{escape(label)}: {count:,}</title>'
            f'<text x="{LABEL_W - 10}" y="{y + 24}" text-anchor="end" class="strong">{escape(label)}</text>'
            f'<rect x="{centre - w / 2:.1f}" y="{y + 4}" width="{w:.1f}" height="{row - 12}" rx="4" '
            f'fill="{colour}"/>'
            f'<text x="{WIDTH - VALUE_W + 10}" y="{y + 18}" class="strong">{count:,}</text>'
            f'<text x="{WIDTH - VALUE_W + 10}" y="{y + 34}" class="note">{escape(note)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def stacked_chart(
    chart_id: str,
    title: str,
    rows: Sequence[tuple[str, Sequence[tuple[str, int, str]], str]],
    empty: str = "No data in this period.",
) -> str:
    """One 100%-wide bar per row split into parts (name, count, colour), with a text on the right."""
    if not rows:
        return _empty(chart_id, title, empty)
    span = WIDTH - LABEL_W - VALUE_W
    desc = "; ".join(f"{label}: {text}" for label, _, text in rows)
    parts = [_open(chart_id, title, len(rows) * ROW_H + 10, desc)]
    for i, (label, pieces, text) in enumerate(rows):
        y, x, total = i * ROW_H + 5, float(LABEL_W), sum(n for _, n, _ in pieces)
        name = escape(_clip(label))
        parts.append(f'<g class="bar"><text x="{LABEL_W - 10}" y="{y + 19}" text-anchor="end">{name}</text>')
        if not total:
            parts.append(
                f'<rect x="{LABEL_W}" y="{y + 4}" width="{span}" height="{ROW_H - 10}" fill="#e5e7eb"/>'
            )
        for part, n, colour in pieces:
            w = n / total * span if total else 0
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{ROW_H - 10}" fill="{colour}">'
                f"<title>{escape(label)} – {escape(part)}: {n:,}</title></rect>"
            )
            x += w
        parts.append(f'<text x="{LABEL_W + span + 8}" y="{y + 19}">{escape(text)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _clip(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
