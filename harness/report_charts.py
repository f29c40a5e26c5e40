"""Static SVG charts for the HTML reports: line charts with 95% bands, and bar charts with whiskers.

Hand-written SVG rather than a charting library, measured: a recipe report (a loss curve of 800
steps, two suites under two conditions, four epochs) is 4.9 MB with plotly's JavaScript inlined
and 0.94 MB with altair/vega-lite's, against 31 kB here; SVG needs no JavaScript at all, so the
page renders the same in any browser, mail client or CI artifact viewer, with no script to fail.
Hovering a point shows its exact value (an SVG <title>).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
_MAX_POINTS = 1200
"""A long loss curve is thinned to this many points (min and max of each bucket kept)."""


@dataclass(frozen=True)
class Series:
    """One line: (x, y) points, and optionally a band of (x, low, high) drawn under it."""

    name: str
    points: list[tuple[float, float | None]]
    band: list[tuple[float, float, float]] = ()
    markers: bool = True
    dashed: bool = False


@dataclass(frozen=True)
class Axes:
    """Where the plot area is and how data maps onto it."""

    x0: float
    x1: float
    y0: float
    y1: float
    left: float = 58
    top: float = 30
    width: float = 440
    height: float = 200

    def x(self, value: float) -> float:
        span = self.x1 - self.x0
        return self.left + (self.width * (value - self.x0) / span if span else self.width / 2)

    def y(self, value: float) -> float:
        span = self.y1 - self.y0
        return (
            self.top
            + self.height
            - (self.height * (value - self.y0) / span if span else self.height / 2)
        )


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2 or 5 times a power of ten apart)."""
    if not (_finite(low) and _finite(high)):
        return [0.0, 1.0]
    if high <= low:
        low, high = low - 1, high + 1
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def _label(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def thin(points: list[tuple[float, float]], limit: int = _MAX_POINTS) -> list[tuple[float, float]]:
    """At most about `limit` points, keeping each bucket's lowest and highest (spikes stay
    visible)."""
    if len(points) <= limit:
        return points
    size = math.ceil(len(points) / (limit // 2))
    out = []
    for i in range(0, len(points), size):
        bucket = points[i : i + size]
        low, high = min(bucket, key=lambda p: p[1]), max(bucket, key=lambda p: p[1])
        out += sorted({low, high}, key=lambda p: p[0])
    return out


def _segments(points) -> list[list[tuple[float, float]]]:
    """Runs of finite points: a missing or non-finite value breaks the line instead of faking it."""
    runs, current = [], []
    for x, y in points:
        if _finite(x) and _finite(y):
            current.append((x, y))
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def _frame(
    title: str, axes: Axes, x_ticks, y_ticks, x_label: str, y_label: str, x_names: dict | None
) -> list[str]:
    parts = [f'<text x="0" y="16" class="chart-title">{html.escape(title)}</text>']
    for t in y_ticks:
        y = axes.y(t)
        parts.append(
            f'<line x1="{axes.left}" y1="{y:.1f}" x2="{axes.left + axes.width}" y2="{y:.1f}" '
            'class="grid"/>'
        )
        parts.append(
            f'<text x="{axes.left - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(t)}</text>'
        )
    base = axes.top + axes.height
    for t in x_ticks:
        x = axes.x(t)
        name = x_names.get(t, _label(t)) if x_names else _label(t)
        parts.append(f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 4}" class="axis"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{base + 17}" text-anchor="middle">{html.escape(name)}</text>'
        )
    parts.append(
        f'<line x1="{axes.left}" y1="{base}" x2="{axes.left + axes.width}" y2="{base}" '
        'class="axis"/>'
    )
    parts.append(
        f'<text x="{axes.left + axes.width / 2}" y="{base + 34}" text-anchor="middle" '
        'class="muted">'
        f"{html.escape(x_label)}</text>"
    )
    parts.append(
        f'<text transform="translate(12 {axes.top + axes.height / 2}) rotate(-90)" '
        'text-anchor="middle" '
        f'class="muted">{html.escape(y_label)}</text>'
    )
    return parts


def _series_parts(
    series: Series, color: str, axes: Axes, x_names: dict | None, unit: str
) -> list[str]:
    parts = []
    band = [(x, lo, hi) for x, lo, hi in series.band if _finite(x) and _finite(lo) and _finite(hi)]
    if len(band) > 1:
        outline = [(axes.x(x), axes.y(hi)) for x, _, hi in band] + [
            (axes.x(x), axes.y(lo)) for x, lo, _ in band[::-1]
        ]
        parts.append(
            f'<polygon points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in outline)}" fill="{color}" '
            f'fill-opacity="0.16" stroke="none"><title>{html.escape(series.name)}: 95% '
            "interval</title></polygon>"
        )
    dash = ' stroke-dasharray="6 4"' if series.dashed else ""
    for run in _segments(series.points):
        run = thin(run)
        coords = " ".join(f"{axes.x(x):.1f},{axes.y(y):.1f}" for x, y in run)
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'
        )
    if series.markers:
        intervals = {x: (lo, hi) for x, lo, hi in band}
        for run in _segments(series.points):
            for x, y in run:
                name = x_names.get(x, _label(x)) if x_names else _label(x)
                text = f"{series.name}, {name}: {y:.4g}{unit}"
                if x in intervals:
                    text += f" (95% interval {intervals[x][0]:.4g}-{intervals[x][1]:.4g}{unit})"
                parts.append(
                    f'<circle cx="{axes.x(x):.1f}" cy="{axes.y(y):.1f}" r="3.5" fill="{color}">'
                    f"<title>{html.escape(text)}</title></circle>"
                )
    return parts


def _legend(series: list[Series], axes: Axes) -> tuple[list[str], float]:
    """Swatches and names under the plot, wrapped into rows; returns (parts, height used)."""
    parts, x, y = [], axes.left, axes.top + axes.height + 52
    for i, s in enumerate(series):
        width = 40 + 7 * min(len(s.name), 40)
        if x + width > axes.left + axes.width and x > axes.left:
            x, y = axes.left, y + 18
        color = PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        parts.append(
            f'<line x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}" stroke="{color}" '
            f'stroke-width="3"{dash}/>'
        )
        name = s.name if len(s.name) <= 40 else s.name[:39] + "…"
        parts.append(f'<text x="{x + 22}" y="{y}">{html.escape(name)}</text>')
        x += width
    return parts, y - (axes.top + axes.height + 52) + 18


def line_chart(
    title: str,
    series: list[Series],
    *,
    x_label: str,
    y_label: str,
    percent: bool = False,
    x_ticks: list[float] | None = None,
    x_names: dict | None = None,
    y_range: tuple[float, float] | None = None,
    marker: tuple[float, str] | None = None,
    x_lines: list[tuple[float, str]] = (),
) -> str:
    """An SVG line chart. `percent`: values are 0-1 and shown as 0-100. `x_names`: labels for x
    values (epoch numbers as checkpoint names). `marker`: (x, text), a highlighted vertical line
    (the best epoch); `x_lines`: faint labelled vertical lines (epoch ends on a loss curve)."""
    scale = 100.0 if percent else 1.0
    scaled = [
        Series(
            s.name,
            [(x, None if y is None else scale * y) for x, y in s.points],
            [(x, scale * lo, scale * hi) for x, lo, hi in s.band],
            s.markers,
            s.dashed,
        )
        for s in series
    ]
    xs = [x for s in scaled for x, _ in s.points if _finite(x)] + list(x_ticks or [])
    ys = [y for s in scaled for _, y in s.points if _finite(y)] + [
        v for s in scaled for _, lo, hi in s.band for v in (lo, hi) if _finite(v)
    ]
    if not xs or not ys:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="520" height="60" role="img" '
            f'aria-label="{html.escape(title)}"><text x="0" y="16" '
            f'class="chart-title">{html.escape(title)}</text>'
            '<text x="0" y="42" class="muted">no data yet</text></svg>'
        )
    y_ticks = nice_ticks(*(y_range or (min(ys), max(ys))))
    if x_ticks is None:
        x_ticks = nice_ticks(min(xs), max(xs), 6)
    axes = Axes(min(x_ticks[0], min(xs)), max(x_ticks[-1], max(xs)), y_ticks[0], y_ticks[-1])
    parts = _frame(title, axes, x_ticks, y_ticks, x_label, y_label, x_names)
    for x, text in x_lines:
        px = axes.x(x)
        parts.append(
            f'<line x1="{px:.1f}" y1="{axes.top}" x2="{px:.1f}" y2="{axes.top + axes.height}" '
            'class="epoch-end">'
            f"<title>{html.escape(text)}</title></line>"
        )
    if marker is not None and _finite(marker[0]):
        px = axes.x(marker[0])
        parts.append(
            f'<line x1="{px:.1f}" y1="{axes.top}" x2="{px:.1f}" y2="{axes.top + axes.height}" '
            'class="best"/>'
        )
        near_right = px > axes.left + 0.7 * axes.width  # keep the label inside the chart
        parts.append(
            f'<text x="{px - 4 if near_right else px + 4:.1f}" y="{axes.top + 12}" '
            'class="best-label" '
            f'text-anchor="{"end" if near_right else "start"}">{html.escape(marker[1])}</text>'
        )
    for i, s in enumerate(scaled):
        parts += _series_parts(s, PALETTE[i % len(PALETTE)], axes, x_names, "%" if percent else "")
    legend, legend_height = _legend(scaled, axes)
    height = axes.top + axes.height + 52 + legend_height
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{axes.left + axes.width + 20}" '
            f'height="{height:.0f}" role="img" aria-label="{html.escape(title)}">',
            *parts,
            *legend,
            "</svg>",
        ]
    )


def bar_chart(
    title: str,
    labels: list[str],
    values: list[float | None],
    intervals: list[tuple[float, float] | None] | None = None,
) -> str:
    """A horizontal bar chart, 0-100%, one labelled bar per run, its 95% interval as a whisker."""
    bar, gap, left, width = 22, 8, 190, 360
    intervals = intervals or [None] * len(values)
    height = len(labels) * (bar + gap) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 70}" height="{height}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="0" y="16" class="chart-title">{html.escape(title)}</text>',
    ]
    for tick in (0, 25, 50, 75, 100):
        x = left + width * tick / 100
        parts.append(f'<line x1="{x}" y1="26" x2="{x}" y2="{height - 8}" class="grid"/>')
    for i, (label, value, interval) in enumerate(zip(labels, values, intervals)):
        y = 30 + i * (bar + gap)
        short = label if len(label) <= 28 else label[:27] + "…"
        parts.append(
            f'<text x="{left - 6}" y="{y + bar * 0.7}" '
            f'text-anchor="end">{html.escape(short)}</text>'
        )
        if not _finite(value):
            parts.append(f'<text x="{left + 4}" y="{y + bar * 0.7}" class="muted">not run</text>')
            continue
        w = width * min(1.0, max(0.0, value))
        tip = f"{label}: {100 * value:.2f}%" + (
            f" (95% interval {100 * interval[0]:.2f}-{100 * interval[1]:.2f})" if interval else ""
        )
        parts.append(
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" '
            f'fill="{PALETTE[i % len(PALETTE)]}">'
            f"<title>{html.escape(tip)}</title></rect>"
        )
        end = left + w
        if interval and all(_finite(v) for v in interval):
            lo, hi = (left + width * min(1.0, max(0.0, v)) for v in interval)
            parts.append(
                f'<path d="M{lo:.1f},{y + bar / 2}H{hi:.1f}M{lo:.1f},{y + 5}V{y + bar - 5}'
                f'M{hi:.1f},{y + 5}V{y + bar - 5}" class="whisker"/>'
            )
            end = max(end, hi)
        parts.append(f'<text x="{end + 4:.1f}" y="{y + bar * 0.7}">{100 * value:.2f}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}td{white-space:nowrap}.wide{overflow-x:auto}
.charts{display:flex;flex-wrap:wrap;gap:2em}svg text{font-size:12px;fill:#333}
svg .chart-title{font-weight:bold;font-size:13px}svg .muted,.muted{fill:#777;color:#777}
.muted{font-size:90%}svg .grid{stroke:#e3e3e3}svg .axis{stroke:#888}
svg .best{stroke:#2a9d3a;stroke-width:2;stroke-dasharray:4 3}
svg .best-label{fill:#2a9d3a;font-weight:bold}svg .epoch-end{stroke:#bbb;stroke-dasharray:2 3}
svg .whisker{stroke:#222;fill:none}tr.best td{background:#e9f7ec;font-weight:bold}
.pm{color:#777;font-size:85%}.badge{color:#2a9d3a;font-weight:bold}"""
"""Shared by every report page (the classes the charts use)."""
