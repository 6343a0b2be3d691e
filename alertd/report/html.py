"""The one-page report: every series of every run as an inline SVG, episodes shaded, and a table.

Self-contained: inline CSS and SVG only, no script, no external reference; opens from disk.

    page = render(collect(paths, engine), title="exp3")
"""
from __future__ import annotations

import math
import os
import time
from html import escape

from alertd.report.collect import Episode, RunData
from alertd.report.svg import color, series_svg

CSS = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 4px; }
.meta { color: #555; margin: 0 0 8px; }
.plots { display: flex; flex-wrap: wrap; gap: 8px; }
table.episodes { border-collapse: collapse; margin-top: 8px; }
table.episodes th, table.episodes td { border: 1px solid #ddd; padding: 3px 8px; text-align: left;
  vertical-align: top; }
table.episodes th { background: #f3f3f3; }
.sev { font-weight: bold; } .none { color: #2ca02c; }
"""


def _value(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v:.6g}" if math.isfinite(v) else str(v)


def _labels(e: Episode) -> str:
    return ", ".join(f"{k}={v}" for k, v in e.labels.items() if k != "severity")


def episode_table(runs: list[RunData]) -> str:
    """A table with one row per episode of every run."""
    rows = []
    for run in runs:
        for e in run.episodes:
            end = "still firing" if e.end is None else str(e.end)
            rows.append(
                f'<tr class="episode-row" data-rule="{escape(e.rule)}">'
                f"<td>{escape(os.path.basename(run.path))}</td><td>{escape(e.rule)}</td>"
                f'<td class="sev" style="color:{color(e.severity)}">{escape(e.severity)}</td>'
                f"<td>{escape(_labels(e))}</td><td>{e.start}</td><td>{end}</td>"
                f"<td>{_value(e.value)}</td><td>{escape(e.summary)}</td></tr>")
    if not rows:
        return '<p class="none">No alert fired.</p>'
    head = "".join(f"<th>{h}</th>" for h in ("run", "rule", "severity", "labels", "fired at step",
                                            "resolved at step", "value", "summary"))
    return f'<table class="episodes"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def run_section(run: RunData) -> str:
    """A run's heading, counts and one plot per series (series with alerts first)."""
    on: dict[str, list[Episode]] = {name: [] for name in run.series}
    for e in run.episodes:
        for name in run.series_of(e):
            on[name].append(e)
    order = sorted(run.series, key=lambda n: not on[n])  # stable: file order within each part
    plots = "".join(series_svg(run.path, run.series[n], on[n], run.first_step, run.last_step)
                    for n in order)
    bad = (f", {run.tally.bad_lines} malformed lines skipped (first at line "
           f"{run.tally.first_bad_line})" if run.tally.bad_lines else "")
    return (f'<section class="run" data-run="{escape(run.path)}"><h2>{escape(run.path)}</h2>'
            f'<p class="meta">{run.tally.records} records, steps {run.first_step}–{run.last_step}, '
            f"{len(run.series)} series, {len(run.episodes)} alert episodes{bad}</p>"
            f'<div class="plots">{plots or "<p>No numeric series.</p>"}</div></section>')


def render(runs: list[RunData], title: str = "alertd report", rules: str = "") -> str:
    """The whole page as one HTML string."""
    episodes = sum(len(r.episodes) for r in runs)
    made = time.strftime("%Y-%m-%d %H:%M:%S")
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{CSS}</style></head><body>"
            f"<h1>{escape(title)}</h1>"
            f'<p class="meta">{len(runs)} run(s), {episodes} alert episode(s); rules: '
            f"{escape(rules or 'built-in pack')}; made {made} by alertd report</p>"
            f"<h2>Alert episodes</h2>{episode_table(runs)}"
            f'{"".join(run_section(r) for r in runs)}'
            "</body></html>\n")
