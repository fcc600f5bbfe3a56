"""`compute_info` on a small made-up file, and the headline figures of the shared file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from revstudy.data.dataset import digits_to_string, read_dataset
from revstudy.data.info import (
    HIGH_SHIFT,
    OVER_VALENT,
    TOO_MANY_PEAKS,
    binary_entropy_bits,
    carbon_counts,
    compute_info,
    print_info,
)

SHARED_CSV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "reversibledata.csv"


def structure(bonds: dict[tuple[int, int], int]) -> str:
    """136 digits from {(carbon a, carbon b): digit}, a < b."""
    g = np.zeros((16, 16), dtype=np.int8)
    for (a, b), d in bonds.items():
        g[a, b - 1] = d
    return digits_to_string(g)


def spectrum(*bins: int) -> str:
    bits = ["0"] * 1024
    for b in bins:
        bits[b] = "1"
    return "".join(bits)


BENZENE = structure({(0, 1): 7, (1, 2): 6, (2, 3): 7, (3, 4): 6, (4, 5): 7, (0, 5): 6})
ROWS = [
    (structure({}), spectrum(10)),  # methane
    (structure({(0, 1): 3}), spectrum(357, 1023)),  # ethyne: sp carbon, bin 1023 is fine
    (structure({(0, 1): 1}), spectrum(5, 6, 7)),  # ethane with 3 peaks: too many
    (structure({(0, 1): 1, (1, 2): 1}), spectrum(80, 1023)),  # propane at >= 204.6 ppm
    (structure({(0, 1): 2, (1, 2): 2}), spectrum(370, 1023)),  # allene: cumulated, fine
    (BENZENE, spectrum(642)),
    (BENZENE, spectrum(643)),  # same structure, other spectrum
    (BENZENE, spectrum(643)),  # and an exact repeat
]


def write_csv(path: Path) -> Path:
    lines = ["A,B,C,D"]
    lines += [f"{100 + i},{200 + i},{c},{d}" for i, (c, d) in enumerate(ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_binary_entropy() -> None:
    assert binary_entropy_bits(np.array([[1, 0, 1], [0, 0, 1]])) == pytest.approx(1.0)
    assert binary_entropy_bits(np.array([[1, 1], [0, 0]])) == pytest.approx(2.0)


def test_carbon_counts() -> None:
    grids = np.zeros((3, 16, 16), dtype=np.int8)
    grids[1, 0, 0] = 1  # ethane
    grids[2, 15, 15] = 1  # carbons 15-16 bonded: 17 carbons
    assert carbon_counts(grids).tolist() == [1, 2, 17]


def test_compute_info(tmp_path: Path) -> None:
    info = compute_info(read_dataset(write_csv(tmp_path / "d.csv")))
    assert info.rows == 8 and info.molecules == 8 and info.structures == 6
    assert info.carbon_histogram == {1: 1, 2: 2, 3: 2, 6: 3}
    assert info.bond_counts == {"single": 3, "double": 2, "triple": 1, "aromatic": 18}
    assert info.density[1024] == pytest.approx(13 / (8 * 1024))
    assert info.density[32] == pytest.approx(11 / (8 * 32))  # bins 5,6,7 and 10 share coarse bit 0
    assert info.mean_peaks == pytest.approx(13 / 8)
    assert info.duplicates == {
        "structures_with_several_rows": 1,
        "rows_sharing_a_structure": 3,
        "structures_with_different_spectra": 1,
        "rows_repeating_structure_and_spectrum": 1,
    }
    assert info.suspicious_counts == {TOO_MANY_PEAKS: 1, HIGH_SHIFT: 1, OVER_VALENT: 0}
    assert [(r["line"], r["reasons"]) for r in info.suspicious] == [
        (4, [TOO_MANY_PEAKS]),
        (5, [HIGH_SHIFT]),
    ]
    assert info.entropy_bits == pytest.approx(
        binary_entropy_bits(read_dataset(tmp_path / "d.csv").x())
    )
    json.dumps(info.as_dict())  # JSON-able


def test_a_carbon_with_more_than_four_bonds_is_suspicious_as_rdkit_refuses_it(
    tmp_path: Path,
) -> None:
    """Flagged exactly where RDKit cannot sanitize the molecule (an independent valence
    check), over random skeletons of single, double and triple bonds; aromatic digits
    count their Kekulé order (a benzene carbon is 4, with a methyl on it still 4)."""
    from revstudy.data.chem import grid_to_mol
    from revstudy.errors import DataError

    rng = np.random.default_rng(0)
    rows = []
    for _ in range(300):
        g = np.triu(rng.choice(4, size=(16, 16), p=[0.9, 0.06, 0.025, 0.015]))[:5, :5]
        rows.append({(a, b + 1): int(g[a, b]) for a, b in zip(*np.nonzero(g), strict=True)})
    toluene = {(0, 1): 7, (1, 2): 6, (2, 3): 7, (3, 4): 6, (4, 5): 7, (0, 5): 6, (0, 6): 1}
    rows += [toluene, {**toluene, (0, 7): 1}]  # the second: a fifth bond on carbon 0
    path = tmp_path / "v.csv"
    lines = ["A,B,C,D"] + [f"{i},1,{structure(r)},{spectrum(1)}" for i, r in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    info = compute_info(read_dataset(path))
    flagged = {r["line"] - 2 for r in info.suspicious if OVER_VALENT in r["reasons"]}
    refused = set()
    for i, r in enumerate(rows):
        g = np.zeros((16, 16), dtype=np.int8)
        for (a, b), d in r.items():
            g[a, b - 1] = d
        try:
            grid_to_mol(g)
        except DataError:
            refused.add(i)
    assert flagged == refused and len(flagged) > 20 and len(rows) - 2 not in flagged
    assert len(rows) - 1 in flagged and info.suspicious_counts[OVER_VALENT] == len(flagged)


def test_print_info(tmp_path: Path) -> None:
    from rich.console import Console

    console = Console(record=True, width=120)
    print_info(compute_info(read_dataset(write_csv(tmp_path / "d.csv"))), console=console)
    text = console.export_text()
    assert "suspicious rows" in text and TOO_MANY_PEAKS in text


def test_shared_file_figures() -> None:
    if not SHARED_CSV.is_file():
        pytest.skip(f"shared data file not present at {SHARED_CSV}")
    info = compute_info(read_dataset(SHARED_CSV))
    assert info.entropy_bits == pytest.approx(73.0, abs=0.5)  # the paper's ~73 bits
    assert max(info.carbon_histogram) <= 17
    assert 0 < info.density[1024] < info.density[32] < 1
