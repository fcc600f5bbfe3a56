"""How fast `revstudy predict` gets through many structures, and with how much memory.

    python benchmarks/predict_throughput.py --data ../shared/data/reversibledata.csv \
        --model runs/paper --n 100000                     # ~2 min on 2 cores

Writes N SMILES (the data file's structures, repeated) and N rows in the paper's format to
a temp folder, runs `revstudy predict --json` and the tab-separated listing on each in a
fresh process, and records wall time, structures per second and peak memory (the child's
max RSS). Results: results/predict_throughput.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run(args: list[str]) -> dict[str, Any]:
    """One `revstudy` command in a fresh process: wall time, its own peak RSS, output size."""
    t0 = time.time()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "revstudy.cli", *args], stdout=out, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.time() - t0
        out.seek(0, os.SEEK_END)
        err.seek(0)
        return {
            "exit": proc.returncode,
            "wall_s": wall,
            "peak_rss_mb": usage.ru_maxrss / 1024,  # this child's own (Linux: KiB)
            "stdout_mb": out.tell() / 2**20,
            "stderr_tail": err.read().decode(errors="replace")[-300:],
        }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True, help="a run folder (revstudy train --out)")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--out", default=str(REPO / "benchmarks/results/predict_throughput.json"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from revstudy.data.chem import structure_to_smiles
    from revstudy.data.dataset import read_dataset
    from revstudy.errors import DataError

    ds = read_dataset(args.data)
    smiles = []
    for c in ds.structures:
        with contextlib.suppress(DataError):  # no single molecule RDKit accepts: not timed
            smiles.append(structure_to_smiles(c))
    work = Path(tempfile.mkdtemp(prefix="predict_throughput-"))
    smi = work / "smiles.txt"
    smi.write_text("\n".join((smiles * (args.n // len(smiles) + 1))[: args.n]) + "\n")
    rows = Path(args.data).read_text().splitlines()
    body = (rows[1:] * (args.n // (len(rows) - 1) + 1))[: args.n]
    body = [f"{i},{i}," + line.split(",", 2)[2] for i, line in enumerate(body, start=1)]
    csv = work / "rows.csv"  # (A, B) pairs must be unique: the copies get fresh ids
    csv.write_text("\n".join([rows[0], *body]) + "\n")
    doc: dict[str, Any] = {"n": args.n, "model": str(args.model), "runs": {}}
    for name, extra in (
        ("smiles_json", ["--structures", str(smi), "--json"]),
        ("smiles_lines", ["--structures", str(smi)]),
        ("csv_json", ["--structures", str(csv), "--json"]),
    ):
        r = run(["predict", "--model", str(args.model), *extra])
        r["structures_per_s"] = args.n / r["wall_s"]
        doc["runs"][name] = r
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
        print(name, {k: round(v, 1) for k, v in r.items() if isinstance(v, float)}, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
