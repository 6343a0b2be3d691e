"""One series as a small inline SVG: the line, non-finite ticks, and alert episodes as labelled spans."""
from __future__ import annotations

import math
from html import escape

from alertd.report.axes import fmt, value_range
from alertd.report.collect import Episode, Series

W, H = 520, 160
LEFT, RIGHT, TOP, BOTTOM = 58, 10, 20, 20
COLORS = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}
LINE = "#1f3f77"


def color(severity: str) -> str:
    """The colour of an episode of this severity."""
    return COLORS.get(severity, "#9467bd")


def series_svg(run: str, s: Series, episodes: list[Episode], first: int, last: int) -> str:
    """An <svg class="series-plot"> of one series, its episodes shaded from firing to resolved."""
    values = [v for _, v in s.points]
    values += [e.threshold for e in episodes if e.threshold is not None and math.isfinite(e.threshold)]
    lo, hi = value_range(min(values), max(values)) if values else (0.0, 1.0)
    x0, x1 = (first, last) if last > first else (first - 1, first + 1)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(step: float) -> float:
        return LEFT + (step - x0) / (x1 - x0) * pw

    def y(v: float) -> float:
        return TOP + (hi - v) / (hi - lo) * ph

    out = [f'<svg class="series-plot" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" data-run="{escape(run)}" data-series="{escape(s.name)}" '
           f'role="img" aria-label="{escape(s.name)}">',
           f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>']
    for i, e in enumerate(episodes):
        c = color(e.severity)
        xa, xb = x(e.start), x(last if e.end is None else e.end)
        end = "still firing at the end" if e.end is None else f"resolved at step {e.end}"
        ty = TOP + 11 + 11 * (i % 3)  # stagger the labels of overlapping episodes
        anchor, tx = ("end", xb - 2) if xa > LEFT + pw * 0.7 else ("start", xa + 2)
        out.append(f'<g class="episode" data-rule="{escape(e.rule)}" data-start="{e.start}" '
                   f'data-end="{"" if e.end is None else e.end}">'
                   f'<title>{escape(e.rule)}: fired at step {e.start}, {end}. {escape(e.summary)}</title>'
                   f'<rect x="{xa:.1f}" y="{TOP}" width="{max(xb - xa, 2):.1f}" height="{ph}" '
                   f'fill="{c}" fill-opacity="0.18"/>'
                   f'<line x1="{xa:.1f}" x2="{xa:.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="{c}"/>'
                   f'<text class="episode-label" x="{tx:.1f}" y="{ty}" font-size="10" fill="{c}" '
                   f'text-anchor="{anchor}">{escape(e.rule)}</text>')
        if e.threshold is not None and math.isfinite(e.threshold):
            out.append(f'<line class="threshold" x1="{xa:.1f}" x2="{max(xb, xa + 2):.1f}" '
                       f'y1="{y(e.threshold):.1f}" y2="{y(e.threshold):.1f}" stroke="{c}" '
                       f'stroke-dasharray="4 2"/>')
        if e.value is not None and math.isfinite(e.value):
            out.append(f'<circle cx="{xa:.1f}" cy="{y(e.value):.1f}" r="3" fill="{c}"/>')
        out.append("</g>")
    if s.points:
        path = " ".join(f"{x(st):.1f},{y(v):.1f}" for st, v in s.points)
        out.append(f'<polyline class="series-line" points="{path}" fill="none" stroke="{LINE}" '
                   f'stroke-width="1.2"/>')
    for st in s.nonfinite:  # NaN/inf have no height: a red tick along the top edge
        out.append(f'<line class="nonfinite" x1="{x(st):.1f}" x2="{x(st):.1f}" y1="{TOP}" '
                   f'y2="{TOP + 6}" stroke="#d62728"/>')
    last_v = "none" if s.last is None else fmt(s.last)
    out += [f'<text x="4" y="14" font-size="11" font-weight="bold">{escape(s.name)}</text>',
            f'<text x="{W - RIGHT}" y="14" font-size="10" text-anchor="end" fill="#555">'
            f'{s.count} records, last {last_v}'
            f'{f", {s.nonfinite_count} non-finite" if s.nonfinite_count else ""}</text>']
    if s.points:  # the data's own extremes, where they are drawn (the range has some padding)
        vmin, vmax = min(v for _, v in s.points), max(v for _, v in s.points)
        out += [f'<text x="{LEFT - 4}" y="{y(vmax) + 3:.1f}" font-size="9" text-anchor="end">'
                f'{fmt(vmax)}</text>']
        if vmax != vmin:
            out += [f'<text x="{LEFT - 4}" y="{y(vmin) + 3:.1f}" font-size="9" text-anchor="end">'
                    f'{fmt(vmin)}</text>']
    out += [f'<text x="{LEFT}" y="{H - 6}" font-size="9">step {x0}</text>',
            f'<text x="{W - RIGHT}" y="{H - 6}" font-size="9" text-anchor="end">{x1}</text>',
            "</svg>"]
    return "".join(out)
