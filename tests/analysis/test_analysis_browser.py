"""Open the report in headless Chromium: plots render, no errors, no network.

Uses only the stdlib: Chromium's --dump-dom after a virtual-time budget gives the DOM
after plotly.js has drawn; a probe script injected into a copy of the report records
uncaught errors, console.error calls and every resource the page loaded (Resource
Timing) into the DOM, so the dump shows them too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

import analysis

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and Path("/usr/bin/chromium").exists():
    CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="headless Chromium not found (apt-get install -y chromium)"
    ),
]

_PROBE = """<script>
window.__errs = [];
window.addEventListener('error', function (e) { __errs.push('uncaught: ' + e.message); });
window.addEventListener('unhandledrejection',
  function (e) { __errs.push('rejection: ' + e.reason); });
(function () { var ce = console.error; console.error = function () {
  __errs.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
  ce.apply(console, arguments); }; })();
window.addEventListener('load', function () { setTimeout(function () {
  var p = document.createElement('pre'); p.id = '__probe';
  p.textContent = JSON.stringify({errors: __errs,
    resources: performance.getEntriesByType('resource').map(function (r) { return r.name; })});
  document.body.appendChild(p); }, 500); });
</script>"""


class _PlotCounter(HTMLParser):
    """Counts plotly plot divs, and those that contain an svg.main-svg (i.e. drawn)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.plot_depth: int | None = None
        self.current_has_svg = False
        self.plots = 0
        self.drawn = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "div":
            self.depth += 1
            if self.plot_depth is None and "js-plotly-plot" in classes:
                self.plot_depth, self.current_has_svg = self.depth, False
                self.plots += 1
        elif tag == "svg" and self.plot_depth is not None and "main-svg" in classes:
            self.current_has_svg = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            if self.plot_depth == self.depth:
                self.drawn += self.current_has_svg
                self.plot_depth = None
            self.depth -= 1


def run_chromium(html_file: Path, user_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={user_dir}", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=10000", *extra, html_file.resolve().as_uri(),
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("kind", ["single", "multi", "failed"])
def test_report_renders_offline(study_dir, tmp_path: Path, kind: str) -> None:
    report = analysis.write_report(study_dir(kind), tmp_path / f"{kind}.html")
    text = report.read_text()
    n_fig = int(re.search(r'name="revstudy-figures" content="(\d+)"', text).group(1))
    probed = tmp_path / "probed.html"
    probed.write_text(text.replace("<head>", "<head>" + _PROBE, 1))
    res = run_chromium(probed, tmp_path / "profile", "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout

    m = re.search(r'<pre id="__probe">(.*?)</pre>', dom, re.S)
    assert m, "probe did not run (page never finished loading?)"
    probe = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert probe["errors"] == []
    assert probe["resources"] == [], "the report fetched something"
    assert "Uncaught" not in res.stderr

    counter = _PlotCounter()
    counter.feed(dom)
    assert counter.plots == n_fig
    assert counter.drawn == n_fig
    if kind != "failed":
        assert n_fig >= 10


def test_a_contour_matrix_with_a_numeric_categorical_parameter_draws(tmp_path: Path) -> None:
    """A quick study's contour (lr, y_dim, blocks_3; y_dim 256 untried) once drew a blank
    square with an uncaught TypeError in plotly.js."""
    from analysis._plot_optuna import _contour
    from revstudy.studyfolder import Objective
    from tests.analysis.test_analysis_optuna import matrix_study

    fig = _contour(matrix_study(), [Objective("m")], ["lr", "y_dim", "blocks"])[0]
    page = tmp_path / "contour.html"
    page.write_text(fig.to_html(include_plotlyjs=True).replace("<head>", "<head>" + _PROBE, 1))
    res = run_chromium(page, tmp_path / "profile", "--dump-dom")
    m = re.search(r'<pre id="__probe">(.*?)</pre>', res.stdout, re.S)
    assert m, "probe did not run (page never finished loading?)"
    probe = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert probe["errors"] == []
    drawn = len(re.findall(r'class="contourlevel"|class="contourfill"', res.stdout))
    assert drawn > 0, "no contour drawn"
