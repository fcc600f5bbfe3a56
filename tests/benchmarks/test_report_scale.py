"""benchmarks/report_scale.py writes the report of a built study in a fresh process:
checked on a small study that the page is written and every figure is measured. Timings
are the benchmark's."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import report_scale  # noqa: E402


def test_a_small_studys_report_is_written_and_measured() -> None:
    row = report_scale.measure(12, str(REPO), "after")
    assert (row["trials"], row["src"]) == (12, "after")
    assert row["report_s"] > 0 and row["peak_mb"] > 50  # a Python with pandas and plotly
    assert 1 < row["page_mb"] < 20  # plotly.js inline (~4.8 MB) and 12 trials' figures
