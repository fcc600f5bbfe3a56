"""Spectra predicted for structures: what `revstudy predict` prints and `revstudy.predict`
returns, one row per structure, batch by batch.

A row is `{"input", "smiles", "bins"}` (the set bits of the forward-predicted code with their
ppm ranges) or, for a structure that cannot be read, `{"input", "error"}`: one bad structure
never stops the others.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from revstudy.data.chem import grid_to_smiles, hydrocarbon_from_smiles
from revstudy.data.dataset import grid_to_channels, read_dataset, structure_digits
from revstudy.data.numbering import canonical_structure
from revstudy.elucidation.elucidate import set_bins
from revstudy.errors import DataError, RevstudyError
from revstudy.files import read_text
from revstudy.training.saved import SavedModel

# structures predicted at a time: memory stays bounded (10k at once peaked at 0.7 GB) and
# output can start at once
PREDICT_BATCH = 4096
# numberings `average` may ask for (models trained with relabel)
MAX_AVERAGE = 64
# an item that is a row of a data file, not a SMILES: this prefix, then its 136 digits
ROW_PREFIX = "csv:"


def structure_inputs(
    structures: str | Path | None = None, smiles: Sequence[str] | None = None
) -> list[tuple[str, str]]:
    """(label, item) pairs to predict: each SMILES of `smiles`, then the structures of a
    file (a CSV in the paper's format, labelled `A/B`, item `ROW_PREFIX` + column C; or
    SMILES one per line, `#` comments allowed)."""
    items: list[tuple[str, str]] = [(s, s) for s in smiles or []]
    if structures is not None:
        path = Path(structures)
        if not path.is_file():
            raise DataError(f"{path}: structures file not found")
        text = read_text(path)
        first = text.lstrip().split("\n", 1)[0].replace(" ", "")
        if first.upper() == "A,B,C,D":
            ds = read_dataset(path)
            for a, b, c in zip(ds.molecule_ids, ds.spectrum_ids, ds.structures, strict=True):
                items.append((f"{a}/{b}", ROW_PREFIX + c))
        else:
            for line in text.splitlines():
                s = line.strip()
                if s and not s.startswith("#"):
                    items.append((s, s.split()[0]))
    if not items:
        raise DataError("give --structures FILE or --smiles SMILES")
    return items


def _read(item: str) -> tuple[np.ndarray, str]:
    """(grid, SMILES shown) of an item. A data file's row is predicted as it is numbered
    even if RDKit rejects it (its SMILES is then empty); a SMILES must be one hydrocarbon."""
    if item.startswith(ROW_PREFIX):
        grid = structure_digits(item[len(ROW_PREFIX) :])
        try:
            return grid, grid_to_smiles(grid)
        except DataError:
            return grid, ""
    return hydrocarbon_from_smiles(item)


def check_average(saved: SavedModel, average: int) -> None:
    """`--average` is 1 to `MAX_AVERAGE`, and above 1 only for a model trained with
    `relabel`: checked before any output starts (no half-written JSON)."""
    if isinstance(average, bool) or not isinstance(average, int):
        raise RevstudyError(f"--average {average!r}: expected an integer")
    if not 1 <= average <= MAX_AVERAGE:
        raise RevstudyError(f"--average {average}: choose 1 to {MAX_AVERAGE}")
    if average > 1 and not saved.config.relabel:
        raise RevstudyError(
            f"--average {average}: {saved.path} was not trained with relabel: true, so "
            "averaging over numberings means nothing there (use 1)"
        )


def prediction_batches(
    saved: SavedModel,
    items: Sequence[tuple[str, str]],
    average: int = 1,
    batch: int | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """The rows of `items` ((label, item) pairs, `structure_inputs`), in input order,
    `batch` (default `PREDICT_BATCH`) at a time, so memory stays bounded however many
    there are. `average` > 1 averages over numberings (`SavedModel.predict_logits`)."""
    check_average(saved, average)
    size = batch or PREDICT_BATCH
    for start in range(0, len(items), size):
        rows: list[dict[str, Any]] = []
        grids: list[np.ndarray] = []
        for label, item in items[start : start + size]:
            try:
                grid, smiles = _read(item)
                if item.startswith(ROW_PREFIX) and saved.config.atom_order != "source":
                    # the model sees each row in canonical order: a row RDKit cannot order
                    # (a five-bonded carbon) fails alone, named, not the whole batch
                    canonical_structure(item[len(ROW_PREFIX) :])
            except RevstudyError as e:  # the row names its input: no second copy of it
                why = str(e).removeprefix(f"SMILES {item!r}: ")
                rows.append({"input": label, "error": why})
                continue
            rows.append({"input": label, "smiles": smiles})
            grids.append(grid)
        if grids:
            x = torch.from_numpy(grid_to_channels(np.stack(grids)))
            codes = iter(saved.predict_codes(x, average))
            for r in rows:
                if "error" not in r:
                    r["bins"] = set_bins(next(codes))
        yield rows
