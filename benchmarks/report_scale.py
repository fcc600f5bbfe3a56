"""`revstudy report` on studies of 300 to 10⁴ trials: wall time, page size, peak memory.

    python benchmarks/report_scale.py [--sizes 300 1000 3000 10000] [--src DIR]
        [--label after] [--out benchmarks/results/report_scale.json]

A study at GPU rates (issue #31: 10,000 trials an hour) is opened with the same report as
an 8-trial one. For each size N a study folder of N finished quick-space trials is built
as benchmarks/driver_loop.py builds it (the Optuna journal, trial folders with a real
trial's records, the tables a driver run leaves; no trial has arrays, so the figures drawn
from a trial's arrays say so, as they would for a folder without them), then the report
is written by a fresh Python process (`analysis.write_report`, as `revstudy report`
calls it) whose wall time and peak resident memory are measured, with the page's size.
`--src DIR` times the analysis package of another checkout (e.g. `git worktree add
/tmp/before COMMIT`) on the same studies: a before/after on one machine. Results are
written after every size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from driver_bookkeeping import record, start_record  # noqa: E402  (one record format)
from driver_loop import build_study  # noqa: E402  (the same synthetic study)

WRITE = """
import sys, warnings
sys.path.insert(0, sys.argv[1])
warnings.simplefilter("ignore")
from analysis import write_report
write_report(sys.argv[2], sys.argv[3])
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[300, 1000, 3000, 10000])
    p.add_argument("--src", default=str(REPO), help="checkout whose analysis package runs")
    p.add_argument("--label", default="after", help="the row's name for --src")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/report_scale.json"))
    return p.parse_args(argv)


def report_once(src: str, study: Path, page: Path) -> dict[str, Any]:
    """Write the report in a fresh process: (seconds, peak MB, page MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", WRITE, src, str(study), str(page)], check=True)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "report_s": round(seconds, 1),
        # the largest child so far: meaningful when sizes grow, as they do here
        "peak_mb": round(max(peak_kb, before) / 1024),
        "page_mb": round(page.stat().st_size / 1e6, 1),
    }


def measure(n: int, src: str, label: str) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from revstudy.study.records import refresh_tables

    with tempfile.TemporaryDirectory(prefix="report_scale-") as tmp:
        study, _, _ = build_study(Path(tmp), n, "tpe", 0, "journal")
        refresh_tables(study, {})
        row = {"trials": n, "src": label}
        row.update(report_once(src, study, Path(tmp) / "report.html"))
    return row


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.is_file() else start_record(space="quick")
    for n in args.sizes:
        record(doc, measure(n, args.src, args.label), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
