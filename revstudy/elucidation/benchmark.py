"""`elucidation_benchmark`: generation vs library retrieval on a run's validation/test split.

The split is rebuilt from the run's config (repeat 0: seed, val/test fractions, test seed),
so on the data file the model was trained on it holds exactly the structures it never saw.
Retrieval searches two libraries: every distinct structure of the file (the answer is in it,
so this bounds what ranking by predicted spectra can do) and the training structures only
(the answer is never in it; only similarity counts). `chance` is what a random ranking of
the full library scores, so every figure has its floor beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from revstudy.data.chem import grid_to_smiles, require_rdkit
from revstudy.data.dataset import encode_spectra, read_dataset, structure_digits
from revstudy.elucidation.elucidate import (
    MAX_SAMPLES,
    Library,
    code_of,
    decode_all,
    generate,
    rank_grids,
)
from revstudy.errors import DataError, RevstudyError
from revstudy.training.saved import SavedModel, load_model

CHUNK_ROWS = 16


class Similarity:
    """Tanimoto similarity of Morgan fingerprints (radius 2, 2048 bits), cached per SMILES."""

    def __init__(self) -> None:
        chem = require_rdkit("the elucidation benchmark")
        from rdkit import DataStructs
        from rdkit.Chem import rdFingerprintGenerator

        self._chem, self._ds = chem, DataStructs
        self._gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
        self._cache: dict[str, Any] = {}

    def _fp(self, smiles: str) -> Any:
        if smiles not in self._cache:
            self._cache[smiles] = self._gen.GetFingerprint(self._chem.MolFromSmiles(smiles))
        return self._cache[smiles]

    def __call__(self, a: str, b: str) -> float:
        return float(self._ds.TanimotoSimilarity(self._fp(a), self._fp(b)))

    def mean_to(self, a: str, library: list[str]) -> float:
        """Mean similarity of `a` to every member of `library`: what the best candidate
        scores on average when it is a structure drawn from the library at random."""
        fps = [self._fp(s) for s in library]
        return float(np.mean(self._ds.BulkTanimotoSimilarity(self._fp(a), fps)))


def _chance(truths: list[str], library: list[str], sim: Similarity) -> dict[str, float | int]:
    """What ranking `library` at random scores: the truth is in it once, so it comes first
    with probability 1/L and among the first ten with 10/L; the best candidate's Tanimoto
    is the mean over the library. The floor the figures above must clear."""
    n = len(library)
    return {
        "top1": 1 / n,
        "top10": min(10, n) / n,
        "tanimoto_top1": float(np.mean([sim.mean_to(t, library) for t in truths])),
        "library": n,
    }


def _summary(ranked: list[list[str]], truths: list[str], valid: float, sim: Similarity) -> dict:
    top1 = [bool(r) and r[0] == t for r, t in zip(ranked, truths, strict=True)]
    top10 = [t in r[:10] for r, t in zip(ranked, truths, strict=True)]
    tan = [sim(r[0], t) if r else 0.0 for r, t in zip(ranked, truths, strict=True)]
    return {
        "valid_fraction": valid,
        "top1": float(np.mean(top1)),
        "top10": float(np.mean(top10)),
        "tanimoto_top1": float(np.mean(tan)),
        "no_candidate": float(np.mean([not r for r in ranked])),
    }


def _generated(
    saved: SavedModel, queries: list[np.ndarray], samples: int, seed: int
) -> tuple[list[list[str]], int, int]:
    """Each query's generated candidates ranked (SMILES), with the counts of valid draws and
    of distinct candidates over all queries; generated in blocks to bound memory."""
    ranked_all: list[list[str]] = []
    valid = unique = 0
    for start in range(0, len(queries), CHUNK_ROWS):
        block = np.stack(queries[start : start + CHUNK_ROWS])
        xs = generate(saved, block, samples, seed + start)
        for q, x in zip(block, xs, strict=True):
            ranked = rank_grids(saved, decode_all(saved, x), q)
            valid += sum(n for _, _, n, _ in ranked)
            unique += len(ranked)
            ranked_all.append([s for s, _, _, _ in ranked])
    return ranked_all, valid, unique


def elucidation_benchmark(
    model_dir: str | Path | SavedModel,
    data_csv: str | Path,
    split: str = "val",
    samples: int = 20,
    seed: int = 0,
    limit: int | None = None,
) -> dict[str, Any]:
    """Valid fraction, top-1/top-10 exact hits and Tanimoto of the best candidate, for
    generation and retrieval side by side, on the run's `split` ("val" or "test")."""
    if split not in ("val", "test"):
        raise RevstudyError(f"--split {split}: expected val or test")
    if not 1 <= samples <= MAX_SAMPLES:
        raise RevstudyError(f"--samples {samples}: choose 1 to {MAX_SAMPLES}")
    saved = model_dir if isinstance(model_dir, SavedModel) else load_model(model_dir)
    c = saved.config
    dataset = read_dataset(data_csv)
    parts = saved.split(dataset.structures)
    rows = parts.val if split == "val" else parts.test
    if len(rows) == 0:
        raise RevstudyError(f"the {split} split is empty (test_fraction={c.test_fraction})")
    rows = rows[:limit] if limit else rows
    truths, queries = [], []
    for i in rows:
        try:
            truths.append(grid_to_smiles(structure_digits(dataset.structures[i])))
        except DataError:
            continue  # no single molecule RDKit accepts: no answer to find
        queries.append(code_of(encode_spectra([dataset.spectra[i]])[0], c.y_dim))
    if not truths:
        raise RevstudyError(f"no {split} row of {data_csv} is a valid molecule")
    sim = Similarity()
    gen_ranked, valid, unique = _generated(saved, queries, samples, seed)
    full = Library.from_structures(saved, dataset.structures)
    train = Library.from_structures(saved, [dataset.structures[i] for i in parts.train])
    ret_full = [[s for s, _ in full.rank(q)[:10]] for q in queries]
    ret_train = [[s for s, _ in train.rank(q)[:10]] for q in queries]
    final = bool(((saved.run.get("repeats") or [{}])[0].get("split") or {}).get("final"))
    return {
        "model": str(saved.path),
        "data": str(data_csv),
        "data_matches_run": saved.run.get("data", {}).get("sha256") in (None, dataset.sha256),
        "trained_on_val": final,
        "split": split,
        "spectra": len(truths),
        "samples": samples,
        "seed": seed,
        "generation": {
            **_summary(gen_ranked, truths, valid / (samples * len(truths)), sim),
            "unique_per_spectrum": unique / len(truths),
        },
        "retrieval": {**_summary(ret_full, truths, 1.0, sim), "library": len(full.smiles)},
        "retrieval_train": {
            **_summary(ret_train, truths, 1.0, sim),
            "library": len(train.smiles),
        },
        "chance": _chance(truths, full.smiles, sim),
    }
