"""Structure prediction from a 13C spectrum with a saved model, and a retrieval baseline.

Generation: query code → Y_latent (`Prior.latent_from_code`), Z_free from the learned prior,
inverse pass, `candidates.decode_candidate`, SMILES (RDKit), de-duplication, then ranking by
how well each candidate's forward-predicted code matches the query (`code_match`).
Retrieval ranks a library's structures with the same score, so the two are comparable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from revstudy.data.chem import hydrocarbon_from_grid, require_rdkit, shifts_to_bits
from revstudy.data.codes import code_match_many
from revstudy.data.dataset import (
    SPECTRUM_BITS,
    bin_to_ppm_range,
    coarsen,
    encode_spectra,
    grid_to_channels,
    read_dataset,
    structure_digits,
)
from revstudy.elucidation.candidates import decode_candidate
from revstudy.errors import DataError, RevstudyError
from revstudy.files import read_text
from revstudy.training.metrics import inverse_all
from revstudy.training.saved import SavedModel

MAX_PPM = 204.8


# ------------------------------------------------------------------------ spectrum input
def _is_file(text: str) -> bool:
    """Whether `text` names a file (a 1024-bit string is too long a name: ENAMETOOLONG)."""
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def parse_query_spectrum(text: str) -> np.ndarray:
    """A query spectrum (what `elucidate` is asked about) as 1024 bits: a 1024-char 0/1
    string (the data file's column D) or a comma/semicolon/space list of ppm values.

    `text` may also name a file holding either; errors then name the file. Shifts outside
    0–204.8 ppm are an error (a one-line `DataError`).
    """
    where = "spectrum"
    if _is_file(text):
        where = text
        text = read_text(Path(text))
    body = text.strip()
    compact = re.sub(r"\s", "", body)
    if len(compact) == SPECTRUM_BITS and set(compact) <= {"0", "1"}:
        if "1" not in compact:  # as an empty list of shifts: nothing to elucidate
            raise DataError(f"{where}: no peaks given (a bit string of {SPECTRUM_BITS} zeros)")
        return encode_spectra([compact])[0]
    if len(compact) > 8 and set(compact) <= {"0", "1"}:  # no ppm value looks like this
        raise DataError(
            f"{where}: a bit string of {len(compact)} characters; the data file's spectrum "
            f"column has {SPECTRUM_BITS}"
        )
    shifts = []
    for tok in re.split(r"[,;\s]+", body):
        if not tok:
            continue
        try:
            v = float(tok)
        except ValueError:
            raise DataError(f"{where}: {tok[:40]!r} is not a ppm value") from None
        if not math.isfinite(v) or not 0.0 <= v <= MAX_PPM:
            raise DataError(f"{where}: shift {tok[:40]} ppm is outside 0–{MAX_PPM} ppm")
        shifts.append(v)
    if not shifts:
        raise DataError(f"{where}: no peaks given")
    return encode_spectra([shifts_to_bits(shifts)])[0]


def code_of(bits: np.ndarray, y_dim: int) -> np.ndarray:
    """The model's y_dim-bit code of a 1024-bit spectrum."""
    return coarsen(np.asarray(bits, dtype=np.float32).reshape(1, -1), y_dim)[0]


def set_bins(code: np.ndarray) -> list[dict[str, float]]:
    """Set bits of a code with their ppm ranges."""
    y_dim = len(code)
    out = []
    for b in np.flatnonzero(np.asarray(code) > 0.5):
        low, high = bin_to_ppm_range(int(b), y_dim)
        out.append({"bin": int(b), "ppm_low": round(low, 3), "ppm_high": round(high, 3)})
    return out


# ------------------------------------------------------------------------ structures
def canonical(grid: np.ndarray) -> tuple[str, np.ndarray] | None:
    """(canonical SMILES, X [4, 16, 16] with RDKit's aromatic flags, as the data file encodes
    them) of a digit grid; None if it is no single molecule the grid can encode
    (`revstudy.data.chem.hydrocarbon_from_grid` says why)."""
    try:
        regrid, smiles = hydrocarbon_from_grid(grid)
    except DataError:
        return None
    return smiles, grid_to_channels(regrid[None])[0]


# ------------------------------------------------------------------------ generation
@dataclass
class Candidate:
    smiles: str
    score: float
    count: int  # how many of the samples decoded to it
    predicted: list[dict[str, float]] = field(default_factory=list)
    strained: bool = False  # implausible (see `strained`): ranked after the others


@dataclass
class Elucidation:
    candidates: list[Candidate]
    samples: int
    valid: int  # samples that decoded to a valid, connected molecule


def generate(saved: SavedModel, codes: np.ndarray, samples: int, seed: int = 0) -> np.ndarray:
    """Continuous X [len(codes), samples, 4, 16, 16] from the inverse pass."""
    code = torch.from_numpy(np.asarray(codes, dtype=np.float32))
    y = saved.prior.latent_from_code(code).repeat_interleave(samples, dim=0)
    gen = torch.Generator().manual_seed(seed)
    z = saved.prior.sample(len(y), gen)
    x = inverse_all(saved.model, z, y).cpu().numpy()
    return x.reshape(len(code), samples, *x.shape[1:])


def rank_grids(
    saved: SavedModel, grids: Sequence[np.ndarray], query: np.ndarray
) -> list[tuple[str, float, int, np.ndarray]]:
    """De-duplicate grids by SMILES and rank by `code_match` of predicted vs query code.

    Returns (smiles, score, count, predicted code), best first; ties go to the candidate more
    samples produced, then to the SMILES.
    """
    seen: dict[str, list[Any]] = {}
    for g in grids:
        c = canonical(g)
        if c is None:
            continue
        if c[0] in seen:
            seen[c[0]][1] += 1
        else:
            seen[c[0]] = [c[1], 1]
    if not seen:
        return []
    names = list(seen)
    x = torch.from_numpy(np.stack([seen[s][0] for s in names]))
    codes = saved.predict_codes(x)
    scores = code_match_many(codes, query)
    scored = [
        (s, float(sc), int(seen[s][1]), c) for s, sc, c in zip(names, scores, codes, strict=True)
    ]
    # implausible candidates (a triple bond or an allene inside a small ring) go last, then
    # by match, then by how many samples produced them
    scored.sort(key=lambda t: (strained(t[0]), -t[1], -t[2], t[0]))
    return scored


def strained(smiles: str) -> bool:
    """A triple bond in a ring of fewer than 8 atoms, or a cumulated C=C=C in one of fewer
    than 9: molecules that cannot exist at room temperature but that the decoder can
    propose (the network knows nothing of geometry)."""
    chem = require_rdkit("strain check")
    mol = chem.MolFromSmiles(smiles)
    if mol is None:
        return True
    rings = mol.GetRingInfo()
    small_ring_triple = any(
        b.GetBondType() == chem.BondType.TRIPLE and any(b.IsInRingSize(n) for n in range(3, 8))
        for b in mol.GetBonds()
    )
    small_ring_allene = any(
        sum(b.GetBondType() == chem.BondType.DOUBLE for b in a.GetBonds()) == 2
        and any(rings.IsAtomInRingOfSize(a.GetIdx(), n) for n in range(3, 9))
        for a in mol.GetAtoms()
    )
    return small_ring_triple or small_ring_allene


def decode_all(saved: SavedModel, xs: np.ndarray) -> list[np.ndarray]:
    """Skeleton grids of continuous structures (threshold: the config's decoder threshold)."""
    thr = saved.config.decoder_threshold
    return [decode_candidate(x, threshold=thr).grid() for x in xs]


# Z_free draws one elucidation may invert: each is a 4x16x16 structure decoded and ranked
MAX_SAMPLES = 100_000


def elucidate(
    saved: SavedModel, bits: np.ndarray, samples: int = 100, top: int = 10, seed: int = 0
) -> Elucidation:
    """Ranked candidate structures for one 1024-bit spectrum."""
    if not 1 <= samples <= MAX_SAMPLES:
        raise RevstudyError(
            f"--samples {samples}: choose 1 to {MAX_SAMPLES} (each draw is a full inverse "
            "pass; 1e9 tried to allocate 256 GB)"
        )
    query = code_of(bits, saved.config.y_dim)
    grids = decode_all(saved, generate(saved, query[None], samples, seed)[0])
    ranked = rank_grids(saved, grids, query)
    valid = sum(n for _, _, n, _ in ranked)
    cands = [Candidate(s, sc, n, set_bins(c), strained(s)) for s, sc, n, c in ranked[:top]]
    return Elucidation(cands, samples, valid)


@dataclass
class Library:
    """A retrieval library: distinct structures of a data file, their SMILES and codes."""

    smiles: list[str]
    codes: np.ndarray

    @classmethod
    def from_structures(cls, saved: SavedModel, structures: Sequence[str]) -> Library:
        names: dict[str, None] = {}  # SMILES in first-seen order: one look-up per structure
        grids: list[np.ndarray] = []
        for s in dict.fromkeys(structures):
            c = canonical(structure_digits(s))
            if c is not None and c[0] not in names:
                names[c[0]] = None
                grids.append(c[1])
        x = torch.from_numpy(np.stack(grids)) if grids else torch.zeros(0, 4, 16, 16)
        return cls(list(names), saved.predict_codes(x) if grids else np.zeros((0, 1)))

    @classmethod
    def from_csv(cls, saved: SavedModel, path: str | Path) -> Library:
        return cls.from_structures(saved, read_dataset(path).structures)

    def rank(self, query: np.ndarray) -> list[tuple[str, float]]:
        scores = code_match_many(self.codes, query)
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], self.smiles[i]))
        return [(self.smiles[i], float(scores[i])) for i in order]


def elucidation_document(
    saved: SavedModel,
    bits: np.ndarray,
    samples: int = 100,
    top: int = 10,
    seed: int = 0,
    library: str | Path | None = None,
) -> dict[str, Any]:
    """What `revstudy elucidate --json` prints and `revstudy.elucidate` returns: the query's
    set bins, the `top` generated candidates and, with a `library` CSV, its `top` molecules
    ranked by the same score."""
    if top < 1:
        raise RevstudyError(f"--top {top}: must be >= 1")
    result = elucidate(saved, bits, samples, top, seed)
    query = code_of(bits, saved.config.y_dim)
    doc: dict[str, Any] = {
        "query_bins": set_bins(query),
        "samples": result.samples,
        "valid": result.valid,
        "candidates": [
            {"smiles": c.smiles, "score": c.score, "count": c.count, "strained": c.strained}
            for c in result.candidates
        ],
    }
    if library is not None:
        lib = Library.from_csv(saved, library)
        doc["library"] = [{"smiles": s, "score": sc} for s, sc in lib.rank(query)[:top]]
    return doc
