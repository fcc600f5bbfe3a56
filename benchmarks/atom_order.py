"""Numbering: how much of a model's skill survives another carbon numbering (issue #21).

    python benchmarks/atom_order.py --data ../shared/data/reversibledata.csv --repeats 5

Trains the paper configuration with each numbering variant on `--repeats` seeded splits
(72/18/10, the held-out test split fixed by `test_seed`) and scores every repeat on the
test split twice: in the numbering its inputs arrive in (the data file's), and with every
molecule renumbered at random (`*_relabelled`, the fixed `RELABEL_SEED`), each put through
the model's atom order as `revstudy evaluate` / `predict` do. Variants:

- `source`: the data file's numbering, the paper's protocol;
- `canonical`: RDKit canonical SMILES order (`atom_order: canonical`);
- `relabel`: the file's numbering, each training molecule renumbered at random every draw;
- `canonical+relabel`: both;
- `ranks`: the alternative canonical numbering, RDKit's canonical atom ranks
  (`CanonicalRankAtoms` on the molecule of its canonical SMILES): `atom_order: canonical`
  with `revstudy.data.numbering.canonical_structure` swapped for the ranks numbering for
  the run (training, evaluation, renumbered scoring; the splits are the same);
- `--config FILE` adds a configuration (e.g. a study's exported best) as it is.

Results (per repeat and mean ± sd) go to `--out` (JSON) and a markdown table is printed.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from train_speed import machine_info  # noqa: E402  (one description of the machine)

VARIANTS = ("source", "canonical", "relabel", "canonical+relabel", "ranks")
SHOWN = (
    "f1_macro_128",
    "f1_macro_skill_128",
    "f1_micro",
    "retrieval_mrr",
    "retrieval_top10",
)


def ranks_structure(structure: str) -> str:
    """The structure renumbered by RDKit's canonical atom ranks (of its canonical SMILES's
    molecule, so that every input numbering and Kekulé form gives one grid)."""
    from rdkit import Chem

    from revstudy.data.chem import grid_to_smiles, mol_to_grid
    from revstudy.data.dataset import digits_to_string, structure_digits

    mol = Chem.MolFromSmiles(grid_to_smiles(structure_digits(structure)))
    ranks = list(Chem.CanonicalRankAtoms(mol, breakTies=True))
    order = sorted(range(mol.GetNumAtoms()), key=lambda i: ranks[i])
    return digits_to_string(mol_to_grid(Chem.RenumberAtoms(mol, order)))


def variant_setup(name: str, dataset: Any, paper: Any) -> tuple[Any, Any]:
    """(config, dataset) of a variant."""
    if name == "source":
        return paper, dataset
    if name == "canonical":
        return paper.replace(atom_order="canonical"), dataset
    if name == "relabel":
        return paper.replace(relabel=True), dataset
    if name == "canonical+relabel":
        return paper.replace(atom_order="canonical", relabel=True), dataset
    if name == "ranks":  # the canonical order computed from ranks (run_variant patches it)
        return paper.replace(atom_order="canonical"), dataset
    raise SystemExit(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")


def run_variant(name: str, config: Any, dataset: Any, repeats: int) -> dict[str, Any]:
    from revstudy.data import numbering
    from revstudy.training.runs import train_repeats

    start = time.perf_counter()
    smiles_order = numbering.canonical_structure
    if name == "ranks":  # every canonical numbering (training, splits, scoring) from ranks
        numbering.canonical_structure = functools.lru_cache(maxsize=None)(ranks_structure)
    try:
        result = train_repeats(config, dataset, repeats, "cpu", evaluate_test=True)
    finally:
        numbering.canonical_structure = smiles_order
    rows = [{k: float(v) for k, v in t.items() if isinstance(v, int | float)} for t in result.test]
    keys = [k for k in SHOWN if k in rows[0]] + [
        f"{k}_relabelled" for k in SHOWN if f"{k}_relabelled" in rows[0]
    ]
    summary = {
        k: {"mean": float(np.mean([r[k] for r in rows])), "sd": float(np.std([r[k] for r in rows]))}
        for k in [*keys, "f1_macro", "f1_macro_relabelled", "f1_bin_prior_baseline"]
        if k in rows[0]
    }
    return {
        "variant": name,
        "invariant_by_construction": config.atom_order == "canonical",
        "config": config.to_dict(),
        "seconds": time.perf_counter() - start,
        "test": rows,
        "summary": summary,
    }


def table(results: list[dict[str, Any]]) -> str:
    def cell(s: dict[str, Any], key: str) -> str:
        v = s.get(key)
        return "–" if v is None else f"{v['mean']:.3f} ± {v['sd']:.3f}"

    lines = [
        "| variant | macro F1 @128, file numbering | macro F1 @128, renumbered | "
        "micro F1, file / renumbered | retrieval MRR, file / renumbered |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        s = dict(r["summary"])
        micro_moved = s.get("f1_micro_relabelled")
        lines.append(
            f"| {r['variant']} | {cell(s, 'f1_macro_128')} | {cell(s, 'f1_macro_128_relabelled')} "
            f"| {s['f1_micro']['mean']:.3f} / "
            + ("–" if micro_moved is None else f"{micro_moved['mean']:.3f}")
            + f" | {cell(s, 'retrieval_mrr')} / {cell(s, 'retrieval_mrr_relabelled')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--config", action="append", default=[], help="extra config YAML")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/atom_order.json"))
    args = ap.parse_args(argv)
    import torch

    from revstudy.data.dataset import read_dataset
    from revstudy.study.spaces import load_fixed_config
    from revstudy.training.config import TrialConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = read_dataset(args.data)
    paper = load_fixed_config("paper")
    jobs = [(v, *variant_setup(v, dataset, paper)) for v in args.variants.split(",") if v]
    jobs += [(f"config {c}", TrialConfig.load_yaml(c), dataset) for c in args.config]
    out = Path(args.out)
    doc: dict[str, Any] = {
        "machine": machine_info(torch.get_num_threads()),
        "data": {"path": dataset.path, "sha256": dataset.sha256, "rows": len(dataset)},
        "repeats": args.repeats,
        "results": [],
    }
    for name, config, data in jobs:
        print(f"{name}: training {args.repeats} repeat(s)", flush=True)
        doc["results"].append(run_variant(name, config, data, args.repeats))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1) + "\n")  # each variant kept as it lands
        print(table(doc["results"][-1:]).splitlines()[-1], flush=True)
    print(table(doc["results"]))


if __name__ == "__main__":
    main()
