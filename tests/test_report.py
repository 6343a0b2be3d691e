"""`alertd report`: the page rendered by a real headless Chromium shows every series and episode.

Chromium comes from Debian (`apt-get install -y chromium`; the Makefile's test target installs it).
"""
import json
import math
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import polars as pl
from PIL import Image

from alertd.record import FIRING, RESOLVED, STEP, AlertEvent
from alertd.report.collect import BUCKETS, _downsample, episodes_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = """
series:
  loss: [loss]
groups:
  - name: t
    rules:
      - alert: LossHigh
        expr: loss > 3
        for_steps: 5
        severity: critical
        annotations: {summary: "loss {{ value | .2f }} > 3"}
      - alert: LossNaN
        expr: not_finite(loss)
        severity: warning
        annotations: {summary: "loss is nan"}
"""


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, dict(attrs), parent, [], ""

    def find(self, tag=None, cls=None):
        for c in self.children:
            if (tag is None or c.tag == tag) and (cls is None or cls in c.attrs.get("class", "").split()):
                yield c
            yield from c.find(tag, cls)

    def all_text(self):
        return self.text + "".join(c.all_text() for c in self.children)


class Tree(HTMLParser):
    """A tiny DOM from the HTML Chromium dumps (nesting as Chromium built it)."""
    VOID = {"meta", "br", "img", "input", "link", "hr"}

    def __init__(self, html):
        super().__init__()
        self.root = self.cur = Node("#root", [], None)
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in self.VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        node = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data):
        self.cur.text += data


def write_runs(tmp_path):
    a = [{"step": s, "loss": 5.0 if 20 <= s < 40 else 1.0 + 0.01 * s, "lr": 1e-3} for s in range(100)]
    b = [{"step": s, "loss": float("nan") if s >= 60 else 2.0 - s / 100, "acc": s / 80}
         for s in range(80)]
    for name, rows in (("a.jsonl", a), ("b.jsonl", b)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "rules.yaml").write_text(RULES)
    return [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]


def alertd(*args, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, "-m", "alertd", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def chromium(tmp_path, *args):
    exe = shutil.which("chromium") or "/usr/bin/chromium"
    assert os.path.exists(exe), "needs Debian's chromium: apt-get install -y chromium"
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    # Everything Chromium writes (profile, caches, crash dumps) stays inside the test's tmp dir.
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home), "XDG_CACHE_HOME": str(home)}
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={home}/profile", f"--crash-dumps-dir={home}/crash",
                           "--no-first-run", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def test_report_in_headless_chromium(tmp_path):
    files = write_runs(tmp_path)
    out = tmp_path / "report.html"
    r = alertd("report", "--rules", str(tmp_path / "rules.yaml"), "--html", str(out), *files,
               cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stderr and "2 runs, 2 alert episodes" in r.stderr
    page = out.read_text()
    # Self-contained: nothing to fetch, nothing to run.
    for needle in ("<script", "<link", "src=", "href=", "url(", "http://", "https://"):
        assert needle not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")

    dump = chromium(tmp_path, "--dump-dom", f"file://{out}")
    assert dump.returncode == 0, dump.stderr[-2000:]
    dom = Tree(dump.stdout).root
    plots = {(s.attrs["data-run"], s.attrs["data-series"]): s for s in dom.find("svg", "series-plot")}
    assert set(plots) == {(files[0], "loss"), (files[0], "lr"), (files[1], "loss"), (files[1], "acc")}
    for (run, _), svg in plots.items():  # each plot sits in its run's section
        section = svg.parent
        while section.tag != "section":
            section = section.parent
        assert section.attrs["data-run"] == run
        assert list(svg.find("polyline", "series-line"))

    high = list(plots[(files[0], "loss")].find("g", "episode"))
    assert [(g.attrs["data-rule"], g.attrs["data-start"], g.attrs["data-end"]) for g in high] == [
        ("LossHigh", "24", "40")]
    assert [t.all_text() for t in high[0].find("text", "episode-label")] == ["LossHigh"]
    nan = list(plots[(files[1], "loss")].find("g", "episode"))
    assert [(g.attrs["data-rule"], g.attrs["data-start"], g.attrs["data-end"]) for g in nan] == [
        ("LossNaN", "60", "")]  # still firing at the end of the file
    assert len(list(plots[(files[1], "loss")].find("line", "nonfinite"))) == 20
    assert not list(plots[(files[0], "lr")].find("g", "episode"))
    rows = [[td.all_text() for td in tr.find("td")] for tr in dom.find("tr", "episode-row")]
    assert [(r[0], r[1], r[4], r[5]) for r in rows] == [("a.jsonl", "LossHigh", "24", "40"),
                                                       ("b.jsonl", "LossNaN", "60", "still firing")]

    shot = tmp_path / "shot.png"
    s = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1000", f"file://{out}")
    assert s.returncode == 0 and shot.exists(), s.stderr[-2000:]
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 1000)
    colors = img.getcolors(maxcolors=1 << 20)
    inked = sum(n for n, c in colors if c != (255, 255, 255))
    assert inked > 0.05 * 1200 * 1000  # not a blank page
    # The critical episode's shading: #d62728 at 18% over the plot's #fafafa background.
    shade = tuple(round(0.18 * c + 0.82 * 250) for c in (0xd6, 0x27, 0x28))
    near = sum(n for n, c in colors if all(abs(a - b) <= 3 for a, b in zip(c, shade)))
    assert near > 1000


def test_no_alerts_and_bad_input(tmp_path):
    files = write_runs(tmp_path)
    quiet = tmp_path / "quiet.yaml"
    quiet.write_text("groups:\n  - name: q\n    rules:\n      - alert: Never\n        expr: loss > 1e9\n")
    r = alertd("report", "--rules", str(quiet), files[0], cwd=tmp_path)  # page on stdout
    assert r.returncode == 0 and "No alert fired." in r.stdout and r.stdout.startswith("<!DOCTYPE html>")
    r = alertd("report", str(tmp_path / "missing.log"), cwd=tmp_path)
    assert r.returncode == 2 and "missing.log: no such file" in r.stderr


def test_downsampling_keeps_spikes_and_counts_nonfinite():
    n = 100_000
    values = [math.sin(i / 500) for i in range(n)]
    values[77_777] = 50.0
    values[90_000:] = [math.inf] * (n - 90_000)
    s = _downsample(pl.DataFrame({STEP: range(n), "x": values}), "x")
    assert len(s.points) <= 2 * BUCKETS and (77_777, 50.0) in s.points
    assert s.nonfinite_count == 10_000 and len(s.nonfinite) <= BUCKETS and s.count == n


def test_episodes_pair_firing_with_resolved():
    def ev(state, step, run="r", labels=None):
        return AlertEvent(rule="R", state=state, run=run, step=step, value=1.0, severity="info",
                          labels=labels or {"loss": "x"}, summary="")
    eps = episodes_of([ev(FIRING, 1), ev(FIRING, 2, labels={"loss": "y"}), ev(RESOLVED, 5),
                       ev(FIRING, 9), ev(RESOLVED, 7, labels={"loss": "y"})])
    assert [(e.labels["loss"], e.start, e.end) for e in eps] == [("x", 1, 5), ("y", 2, 7), ("x", 9, None)]
