"""Summary statistics of a data file: what a study is about to learn from, and what looks wrong.

`compute_info` does the work and returns plain data (testable, JSON-able); `print_info` renders
it. Only numpy is needed, so this works without RDKit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from revstudy.data.chem import AROMATIC_OFFSET  # (chem imports RDKit only when it runs)
from revstudy.data.dataset import GRID, SPECTRUM_BITS, Dataset, coarsen

COARSE_DIMS = (512, 256, 128, 64, 32)
BOND_DIGITS = {"single": (1,), "double": (2,), "triple": (3,), "aromatic": (6, 7)}
TOO_MANY_PEAKS = "more peaks than carbons"
HIGH_SHIFT = "peak in bin 1023 (>= 204.6 ppm), no sp or cumulated carbon"
# no such molecule: `atom_order: canonical` refuses the row, `source` would train on it
OVER_VALENT = "a carbon with more than 4 bonds (Kekulé orders summed)"

# M[i, k] = the higher carbon index of the bond at grid[i, k], i.e. max(i, k + 1) = k + 1 on
# the upper triangle; the lower triangle is always zero in valid data.
_HIGH_CARBON = np.maximum.outer(np.arange(GRID), np.arange(GRID) + 1)


@dataclass
class DataInfo:
    """Everything `revstudy data info` reports about one file."""

    path: str
    sha256: str
    rows: int
    molecules: int
    structures: int
    carbon_histogram: dict[int, int]
    bond_counts: dict[str, int]
    density: dict[int, float]  # share of 1s per code length, 1024 and the coarse codes
    mean_peaks: float
    entropy_bits: float
    duplicates: dict[str, int]
    suspicious_counts: dict[str, int]
    suspicious: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able dict; integer keys become strings as JSON requires."""
        d = asdict(self)
        d["carbon_histogram"] = {str(k): v for k, v in self.carbon_histogram.items()}
        d["density"] = {str(k): v for k, v in self.density.items()}
        return d


def grids_of(ds: Dataset) -> np.ndarray:
    """All structures as int8 digit grids [N, 16, 16]."""
    raw = np.frombuffer("".join(ds.structures).encode("ascii"), dtype=np.uint8) - ord("0")
    rows, cols = np.triu_indices(GRID)
    grids = np.zeros((len(ds), GRID, GRID), dtype=np.int8)
    grids[:, rows, cols] = raw.reshape(len(ds), -1)
    return grids


def carbon_counts(grids: np.ndarray) -> np.ndarray:
    """Carbons per structure: highest carbon index a bond touches + 1; a zero grid is 1 (CH4)."""
    touched = np.where(grids != 0, _HIGH_CARBON, 0).reshape(len(grids), -1).max(axis=1)
    return np.where((grids != 0).reshape(len(grids), -1).any(axis=1), touched + 1, 1)


def binary_entropy_bits(x: np.ndarray) -> float:
    """Sum over positions of the binary entropy of the per-position mean (the paper's estimate
    of how much information the inputs carry; it ignores correlations between positions)."""
    p = np.asarray(x, dtype=np.float64).reshape(len(x), -1).mean(axis=0)
    p = p[(p > 0) & (p < 1)]
    return float(-(p * np.log2(p) + (1 - p) * np.log2(1 - p)).sum())


def _per_carbon(weights: np.ndarray) -> np.ndarray:
    """Per-bond weights [N, 16, 16] summed over each carbon's bonds [N, 17]."""
    per_carbon = np.zeros((len(weights), GRID + 1), dtype=np.int16)
    per_carbon[:, :GRID] += weights.sum(axis=2, dtype=np.int16)  # carbon i, the row
    per_carbon[:, 1:] += weights.sum(axis=1, dtype=np.int16)  # carbon k + 1, the column
    return per_carbon


def _double_bond_counts(grids: np.ndarray) -> np.ndarray:
    """Kekulé double bonds per carbon [N, 17] (aromatic order-2 digits count too)."""
    return _per_carbon((grids == 2) | (grids == 7))


def _valences(grids: np.ndarray) -> np.ndarray:
    """Bonds per carbon [N, 17], each counted by its Kekulé order (digits 6/7: 1/2)."""
    return _per_carbon(np.where(grids > AROMATIC_OFFSET, grids - AROMATIC_OFFSET, grids))


def compute_info(ds: Dataset) -> DataInfo:
    """Statistics of a validated dataset; see `DataInfo`."""
    grids = grids_of(ds)
    y = ds.y()
    carbons = carbon_counts(grids)
    peaks = y.sum(axis=1).astype(int)
    hist_keys, hist_counts = np.unique(carbons, return_counts=True)
    bonds = {name: int(np.isin(grids, digits).sum()) for name, digits in BOND_DIGITS.items()}
    density = {SPECTRUM_BITS: float(y.mean())}
    density.update({d: float(coarsen(y, d).mean()) for d in COARSE_DIMS})

    by_structure: dict[str, list[int]] = {}
    for i, s in enumerate(ds.structures):
        by_structure.setdefault(s, []).append(i)
    repeated = [rows for rows in by_structure.values() if len(rows) > 1]
    differing = [r for r in repeated if len({ds.spectra[i] for i in r}) > 1]
    identical_rows = len(ds) - len(set(zip(ds.structures, ds.spectra, strict=True)))
    duplicates = {
        "structures_with_several_rows": len(repeated),
        "rows_sharing_a_structure": sum(len(r) for r in repeated),
        "structures_with_different_spectra": len(differing),
        "rows_repeating_structure_and_spectrum": identical_rows,
    }

    sp_or_cumulated = (grids == 3).any(axis=(1, 2)) | (_double_bond_counts(grids) >= 2).any(1)
    reasons = {
        TOO_MANY_PEAKS: peaks > carbons,
        HIGH_SHIFT: (y[:, SPECTRUM_BITS - 1] > 0) & ~sp_or_cumulated,
        OVER_VALENT: (_valences(grids) > 4).any(axis=1),
    }
    suspicious = []
    for row in np.flatnonzero(np.logical_or.reduce(list(reasons.values()))):
        suspicious.append(
            {
                "line": int(row) + 2,
                "molecule_id": int(ds.molecule_ids[row]),
                "spectrum_id": int(ds.spectrum_ids[row]),
                "carbons": int(carbons[row]),
                "peaks": int(peaks[row]),
                "reasons": [name for name, mask in reasons.items() if mask[row]],
            }
        )
    return DataInfo(
        path=ds.path,
        sha256=ds.sha256,
        rows=len(ds),
        molecules=len(set(ds.molecule_ids.tolist())),
        structures=len(by_structure),
        carbon_histogram={int(k): int(v) for k, v in zip(hist_keys, hist_counts, strict=True)},
        bond_counts=bonds,
        density=density,
        mean_peaks=float(peaks.mean()),
        entropy_bits=binary_entropy_bits(ds.x()),
        duplicates=duplicates,
        suspicious_counts={name: int(mask.sum()) for name, mask in reasons.items()},
        suspicious=suspicious,
    )


def _table(
    title: str, columns: tuple[str, ...], rows: Sequence[tuple[str, ...]], words_first: bool
) -> Any:
    """A rich table of right-aligned numbers; with `words_first` the first column is left."""
    from rich.table import Table

    t = Table(title=title)
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if words_first and i == 0 else "right")
    for row in rows:
        t.add_row(*row)
    return t


def print_info(info: DataInfo, *, console: Any = None, max_listed: int = 20) -> None:
    """Render `info` as rich tables (stdout unless a console is given)."""
    from rich.console import Console
    from rich.table import Table

    out = console or Console()
    overview = Table(title=f"{info.path}", show_header=False)
    overview.add_column("what")
    overview.add_column("value", justify="right")
    for what, value in (
        ("sha256", info.sha256[:16] + "…"),
        ("rows (spectra)", str(info.rows)),
        ("molecule ids", str(info.molecules)),
        ("distinct structures", str(info.structures)),
        ("mean peaks (set bits) per spectrum", f"{info.mean_peaks:.2f}"),
        ("input entropy estimate (bits)", f"{info.entropy_bits:.1f}"),
    ):
        overview.add_row(what, value)
    out.print(overview)

    out.print(
        _table(
            "carbons per structure",
            ("carbons", "rows"),
            [(str(n), str(c)) for n, c in info.carbon_histogram.items()],
            words_first=False,
        )
    )
    bonds = [(k, str(c)) for k, c in info.bond_counts.items()]
    out.print(_table("bonds (all rows)", ("type", "count"), bonds, words_first=True))
    density = [
        (str(dim), f"{0.2 * SPECTRUM_BITS / dim:g}", f"{share:.4f}")
        for dim, share in info.density.items()
    ]
    cols = ("bits", "ppm per bit", "share of 1s")
    out.print(_table("share of 1s in the spectrum codes", cols, density, words_first=False))
    counts = [(k.replace("_", " "), str(c)) for k, c in info.duplicates.items()]
    out.print(_table("duplicates", ("what", "count"), counts, words_first=True))
    suspicious = [(k, str(c)) for k, c in info.suspicious_counts.items()]
    out.print(_table("suspicious rows", ("reason", "rows"), suspicious, words_first=True))
    if info.suspicious:
        listed = Table(title="suspicious rows (line numbers count the header as line 1)")
        for col in ("line", "A", "B", "carbons", "peaks", "reasons"):
            listed.add_column(col, justify="left" if col == "reasons" else "right")
        for row in info.suspicious[:max_listed]:
            listed.add_row(
                str(row["line"]),
                str(row["molecule_id"]),
                str(row["spectrum_id"]),
                str(row["carbons"]),
                str(row["peaks"]),
                "; ".join(row["reasons"]),
            )
        out.print(listed)
        if len(info.suspicious) > max_listed:
            out.print(f"… and {len(info.suspicious) - max_listed} more (see --json)")
