"""A dedicated 13C shift predictor as the reference row: what a chemist would use instead.

CSP5 (`pip install 'revstudy[reference]'`, MIT, ships its weights, runs offline) predicts
each carbon's shift; the shifts are binned like the data (ppm·5, then OR-coarsened to
`y_dim` bits) and scored with revstudy's own metrics: macro F1, skill over the bin prior,
F1 at 128 bits and retrieval among the file's distinct structures. Predictions are cached
per data sha256 and CSP5 version (JSON, in the user cache), so every `y_dim` is cheap.

Caveats the report repeats: CSP5 is scored on every row of the file, not a held-out
split, and it may have been trained on nmrshiftdb2 itself, so its figures are optimistic.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from revstudy.data.chem import shifts_to_bits, structure_to_smiles
from revstudy.data.dataset import Dataset, coarsen, encode_spectra
from revstudy.errors import DataError, RevstudyError
from revstudy.files import write_json_atomic
from revstudy.training.metrics import bin_prior_baseline_f1, f1_scores, f1_skill
from revstudy.training.resolution import PAPER_Y_DIM, map_to_resolution
from revstudy.training.retrieval import library_index, retrieval_metrics

__all__ = ["CACHE_FORMAT", "Predictor", "csp5_predictor", "reference_metrics", "shifts_by_smiles"]

CACHE_FORMAT = 2  # predictions mapped by SMILES and checked per carbon
CHUNK = 64  # molecules per predictor call: progress between calls, little overhead


def _smiles_or_digits(structure: str) -> str:
    """A structure as a person reads it: its SMILES, or its digits if RDKit rejects it."""
    try:
        return structure_to_smiles(structure, fragments=True)
    except DataError:
        return structure


# SMILES → predicted 13C shifts of each carbon (None where the predictor failed)
Predictor = Callable[[Sequence[str]], list[list[float] | None]]


def csp5_predictor() -> tuple[Predictor, str]:
    """CSP5's batch predictor and its version; a one-line error when it is not installed."""
    try:
        import csp5
    except ImportError:
        raise RevstudyError(
            "the reference predictor needs CSP5: pip install 'revstudy[reference]'"
        ) from None

    def predict(smiles: Sequence[str]) -> list[list[float] | None]:
        result = csp5.predict_smiles(list(smiles), nucleus="13C", random_seed=0)
        return shifts_by_smiles(result.predictions, smiles)

    return predict, importlib.metadata.version("csp5")


def shifts_by_smiles(table: Any, smiles: Sequence[str]) -> list[list[float] | None]:
    """Each input SMILES's predicted shifts from CSP5's prediction table (columns `smiles`,
    `atom_index`, `shift_ppm`), None where it has none.

    Mapped by SMILES, never by `molecule_id`: CSP5 numbers only the molecules it could embed
    (a cyclooctyne it cannot embed shifts every later id), so positions would attach
    predictions to the wrong structures. SMILES are compared canonically, in case the
    table writes them otherwise than they were given."""
    from revstudy.data.chem import require_rdkit

    chem = require_rdkit("mapping reference predictions")
    from rdkit import rdBase

    def key(s: str) -> str:
        with rdBase.BlockLogs():
            mol = chem.MolFromSmiles(s)
        return str(chem.MolToSmiles(mol)) if mol is not None else "raw:" + s

    found: dict[str, list[float]] = {}
    if len(table):
        for smi, group in table.sort_values("atom_index").groupby("smiles", sort=False):
            found[key(str(smi))] = [float(v) for v in group["shift_ppm"]]
    return [found.get(key(s)) for s in smiles]


def predicted_spectra(
    dataset: Dataset,
    predict: Predictor,
    name: str,
    cache: Path | None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[float] | None]:
    """{structure: predicted shifts} for every distinct structure of `dataset` (cached)."""
    # v2: predictions mapped by SMILES (v1 files mapped CSP5's molecule_id by position and
    # attached shifts to the wrong molecules after the first one it could not embed)
    path = None if cache is None else cache / f"{name}-v{CACHE_FORMAT}-{dataset.sha256[:16]}.json"
    if path is not None and path.is_file():
        try:
            doc = json.loads(path.read_text())
            if (
                doc.get("sha256") == dataset.sha256
                and doc.get("format") == CACHE_FORMAT
                and isinstance(doc.get("shifts"), dict)
            ):
                return _checked(doc["shifts"], path)
        except (OSError, ValueError, RevstudyError):
            pass  # a damaged cache is recomputed, never trusted
    structures = sorted(set(dataset.structures))
    smiles: dict[str, str] = {}
    for s in structures:
        with contextlib.suppress(DataError):  # not a molecule RDKit accepts: counted failed
            smiles[s] = structure_to_smiles(s, fragments=True)
    names, todo = list(smiles), list(smiles.values())
    predicted: dict[str, list[float] | None] = {}
    for start in range(0, len(todo), CHUNK):  # in chunks, so long runs show progress
        part = todo[start : start + CHUNK]
        predicted.update(zip(names[start : start + CHUNK], predict(part), strict=True))
        if progress is not None:
            progress(min(start + CHUNK, len(todo)), len(todo))
    shifts = _checked({s: predicted.get(s) for s in structures}, name)
    if path is not None:
        doc = {"format": CACHE_FORMAT, "sha256": dataset.sha256, "predictor": name}
        write_json_atomic(path, {**doc, "shifts": shifts})
    return shifts


def _checked(
    shifts: dict[str, list[float] | None], source: str | Path
) -> dict[str, list[float] | None]:
    """Refuse predictions whose shift count is not the molecule's carbon count: one shift
    per carbon is what a 13C predictor gives, anything else is attached to the wrong
    molecule (or a damaged cache)."""
    from revstudy.data.chem import n_carbons
    from revstudy.data.dataset import structure_digits

    for structure, values in shifts.items():
        if values is None:
            continue
        if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
            raise RevstudyError(f"{source}: predictions of {structure} are not a list of shifts")
        carbons = n_carbons(structure_digits(structure))
        if len(values) != carbons:
            smiles = structure_to_smiles(structure, fragments=True)
            raise RevstudyError(
                f"{source}: {len(values)} predicted shifts for {smiles} "
                f"with {carbons} carbons: predictions are attached to the wrong molecule"
            )
    return shifts


def reference_metrics(
    dataset: Dataset, shifts: dict[str, list[float] | None], y_dim: int = PAPER_Y_DIM
) -> dict[str, float]:
    """revstudy's metrics of the predicted spectra against the file's spectra at `y_dim`."""
    ok = np.array([shifts.get(s) is not None for s in dataset.structures])
    if not ok.any():
        raise RevstudyError(f"{dataset.path}: the reference predicted no molecule")
    kept = [s for s, good in zip(dataset.structures, ok, strict=True) if good]
    pred_fine = encode_spectra([shifts_to_bits(shifts[s] or []) for s in kept])
    truth_fine = dataset.y()[ok]
    pred, truth = coarsen(pred_fine, y_dim), coarsen(truth_fine, y_dim)
    out: dict[str, float] = {"rows": float(ok.sum()), "failed": float((~ok).sum())}
    out.update(f1_scores(truth, pred))
    base = bin_prior_baseline_f1(truth, truth, 0)  # the file's own bin rates
    out["f1_bin_prior_baseline"] = base
    out["f1_macro_skill"] = f1_skill(out["f1_macro"], base)
    t128 = coarsen(truth_fine, PAPER_Y_DIM)
    f1_128 = f1_scores(t128, map_to_resolution(pred, PAPER_Y_DIM))["f1_macro"]
    out["f1_macro_128"] = f1_128
    x = torch.from_numpy(dataset.x()[ok])
    library, index = library_index(x, x)  # every row's structure among the distinct ones
    first = np.zeros(len(library), dtype=np.int64)
    first[index[::-1]] = np.arange(len(x))[::-1]  # a row of each library structure
    logits = torch.from_numpy(pred[first].astype(np.float32)) * 2 - 1  # > 0 where predicted
    out.update(retrieval_metrics(logits, index, torch.from_numpy(truth.astype(np.float32))))
    return {k: (v if math.isfinite(v) else math.nan) for k, v in out.items()}


def run_reference(
    dataset: Dataset,
    y_dim: int = PAPER_Y_DIM,
    cache: Path | None = None,
    predictor: tuple[Predictor, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Predict (or read from the cache) and score: the document `revstudy reference` writes;
    `progress(done, total)` after each chunk of molecules predicted."""
    predict, version = predictor or csp5_predictor()
    name = f"csp5-{version}"
    shifts = predicted_spectra(dataset, predict, name, cache, progress)
    failed = sorted({s for s in dataset.structures if shifts.get(s) is None})
    return {
        "predictor": name,
        "data": {"path": dataset.path, "sha256": dataset.sha256, "rows": len(dataset)},
        "y_dim": y_dim,
        "metrics": reference_metrics(dataset, shifts, y_dim),
        "failed": [_smiles_or_digits(s) for s in failed],
        "caveat": "every row of the file, not a held-out split; the predictor may have "
        "been trained on nmrshiftdb2",
    }
