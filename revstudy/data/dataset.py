"""The paper's CSV format: reading with row-level validation, tensor encoding and splits.

Format (one row per spectrum): A molecule id, B spectrum id, C the 136 upper-triangle
digits of a 16×16 bond grid, D the 1024-bit spectrum. The digit at upper-triangle position
(i, k), k ≥ i, is the bond between carbon i and carbon k + 1: 0 none, 1/2/3 single/double/
triple, 6/7 aromatic with Kekulé order 1/2. Spectrum bin = clip(⌊ppm·5⌋, 0, 1023).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from revstudy.errors import DataError

GRID = 16
N_CHANNELS = 4
STRUCTURE_DIGITS = GRID * (GRID + 1) // 2  # 136
SPECTRUM_BITS = 1024
PPM_PER_BIN = 0.2
COLUMNS = ("A", "B", "C", "D")
ALLOWED_BOND_DIGITS = frozenset("012367")
_ROWS, _COLS = np.triu_indices(GRID)  # row-major upper triangle incl. diagonal: the C order


@dataclass(frozen=True)
class Dataset:
    """A validated data file: ids and the raw digit strings, plus where it came from."""

    path: str
    molecule_ids: np.ndarray  # int64 [N], column A
    spectrum_ids: np.ndarray  # int64 [N], column B
    structures: tuple[str, ...]  # column C, 136 digits each
    spectra: tuple[str, ...]  # column D, 1024 bits each
    sha256: str

    def __len__(self) -> int:
        return len(self.structures)

    def x(self) -> np.ndarray:
        """Structures as float32 [N, 4, 16, 16]."""
        return encode_structures(self.structures)

    def y(self) -> np.ndarray:
        """Spectra as float32 [N, 1024] bits."""
        return encode_spectra(self.spectra)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, streamed, so results can name exactly which data they came from."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_dataset(path: str | Path) -> Dataset:
    """Read and validate a CSV in the paper's format.

    Every problem raises `DataError` naming the file, the 1-based line (the header is line 1)
    and the field, so a user can fix the file without guessing.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: data file not found")
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{p}: not a readable CSV file: {str(e).splitlines()[0]}") from e
    cols = [c.strip() for c in df.columns]
    if tuple(cols) != COLUMNS:
        raise DataError(f"{p}:1: header: expected columns A,B,C,D, found {','.join(cols)}")
    if len(df) == 0:
        raise DataError(f"{p}: no data rows")
    if not isinstance(df.index, pd.RangeIndex):  # pandas took a first row's extra fields
        # for an index column, so every field would be read one column off (a later row of
        # the wrong length is a ParserError, above)
        raise DataError(
            f"{p}:2: {len(COLUMNS) + df.index.nlevels} fields where the header names "
            f"{len(COLUMNS)} (A,B,C,D)"
        )
    df.columns = list(COLUMNS)
    ids: dict[str, list[int]] = {"A": [], "B": []}
    seen: dict[tuple[int, int], int] = {}
    for offset, (a, b, c, d) in enumerate(df.itertuples(index=False, name=None)):
        line = offset + 2
        for field, value in (("A", a), ("B", b)):
            v = value.strip()
            if not (v.isascii() and v.isdigit()) or len(v) > 18:  # an int64 holds 18 digits
                raise DataError(
                    f"{p}:{line}: field {field}: expected an integer id of at most 18 digits "
                    f"0-9, got {v[:40]!r}"
                )
            ids[field].append(int(v))
        _check_digits(p, line, "C", c, STRUCTURE_DIGITS, ALLOWED_BOND_DIGITS, "0-3, 6 or 7")
        _check_digits(p, line, "D", d, SPECTRUM_BITS, frozenset("01"), "0 or 1")
        key = (ids["A"][-1], ids["B"][-1])
        if key in seen:
            raise DataError(
                f"{p}:{line}: fields A,B: pair ({key[0]}, {key[1]}) repeats line {seen[key]}"
            )
        seen[key] = line
    return Dataset(
        path=str(p),
        molecule_ids=np.asarray(ids["A"], dtype=np.int64),
        spectrum_ids=np.asarray(ids["B"], dtype=np.int64),
        structures=tuple(df["C"]),
        spectra=tuple(df["D"]),
        sha256=file_sha256(p),
    )


def _check_digits(
    path: Path, line: int, field: str, value: str, length: int, allowed: frozenset[str], what: str
) -> None:
    if len(value) != length:
        raise DataError(f"{path}:{line}: field {field}: expected {length} digits, got {len(value)}")
    bad = set(value) - allowed
    if bad:
        pos = min(value.index(ch) for ch in bad) + 1
        raise DataError(
            f"{path}:{line}: field {field}: character {value[pos - 1]!r} at position {pos} "
            f"(allowed: {what})"
        )


def structure_digits(s: str) -> np.ndarray:
    """The 136-digit string as an int8 [16, 16] grid (upper triangle incl. diagonal)."""
    grid = np.zeros((GRID, GRID), dtype=np.int8)
    grid[_ROWS, _COLS] = np.frombuffer(s.encode("ascii"), dtype=np.uint8) - ord("0")
    return grid


def digits_to_string(grid: np.ndarray) -> str:
    """Inverse of `structure_digits`: the upper triangle of an int [16, 16] grid as 136 digits."""
    if grid.shape != (GRID, GRID):
        raise ValueError(f"expected a {GRID}x{GRID} grid, got shape {grid.shape}")
    return "".join(str(int(v)) for v in grid[_ROWS, _COLS])


def grid_to_channels(grids: np.ndarray) -> np.ndarray:
    """int digit grids [N, 16, 16] → float32 [N, 4, 16, 16] (single, double, triple, aromatic).

    An aromatic digit (6 or 7) sets its Kekulé-order channel (digit − 5) and the aromatic flag.
    """
    aromatic = grids >= 6
    order = np.where(aromatic, grids - 5, grids)
    x = np.zeros((grids.shape[0], N_CHANNELS, GRID, GRID), dtype=np.float32)
    for ch in range(3):
        x[:, ch] = order == ch + 1
    x[:, 3] = aromatic
    return x


def channels_to_grid(x: np.ndarray) -> np.ndarray:
    """Binary [N, 4, 16, 16] → digit grids [N, 16, 16]; inverse of `grid_to_channels`.

    Where several order channels are set, the highest order wins (a decoder choice for
    generated structures; real inputs have at most one).
    """
    xb = np.asarray(x) > 0.5
    order = np.zeros(xb.shape[:1] + xb.shape[2:], dtype=np.int8)
    for ch in range(3):
        order = np.where(xb[:, ch], ch + 1, order).astype(np.int8)
    aromatic = xb[:, 3] & (order > 0) & (order < 3)
    return np.where(aromatic, order + 5, order).astype(np.int8)


def encode_structures(strings: tuple[str, ...] | list[str]) -> np.ndarray:
    """136-digit strings → float32 [N, 4, 16, 16]."""
    if not strings:
        return np.zeros((0, N_CHANNELS, GRID, GRID), dtype=np.float32)
    raw = np.frombuffer("".join(strings).encode("ascii"), dtype=np.uint8) - ord("0")
    raw = raw.reshape(len(strings), STRUCTURE_DIGITS)
    grids = np.zeros((len(strings), GRID, GRID), dtype=np.int8)
    grids[:, _ROWS, _COLS] = raw
    return grid_to_channels(grids)


def decode_structures(x: np.ndarray) -> list[str]:
    """Binary [N, 4, 16, 16] → 136-digit strings (the lower triangle is ignored)."""
    return [digits_to_string(g) for g in channels_to_grid(x)]


def encode_spectra(strings: tuple[str, ...] | list[str]) -> np.ndarray:
    """1024-bit strings → float32 [N, 1024]."""
    if not strings:
        return np.zeros((0, SPECTRUM_BITS), dtype=np.float32)
    raw = np.frombuffer("".join(strings).encode("ascii"), dtype=np.uint8) - ord("0")
    return raw.reshape(len(strings), SPECTRUM_BITS).astype(np.float32)


def ppm_to_bin(ppm: float) -> int:
    """Spectrum bin of a shift: clip(⌊ppm·5⌋, 0, 1023) (0.2 ppm bins; ≥ 204.6 ppm is 1023)."""
    if not math.isfinite(ppm):
        raise ValueError(f"shift must be a finite number, got {ppm}")
    scaled = ppm * 5  # compared before flooring: 1e308 * 5 is inf, which floor cannot take
    if scaled >= SPECTRUM_BITS - 1:
        return SPECTRUM_BITS - 1
    return 0 if scaled < 0 else math.floor(scaled)


def bin_to_ppm_range(bin_index: int, y_dim: int = SPECTRUM_BITS) -> tuple[float, float]:
    """ppm range [low, high) covered by a bin of a `y_dim`-bit code (edges are open-ended)."""
    width = PPM_PER_BIN * SPECTRUM_BITS / y_dim
    return bin_index * width, (bin_index + 1) * width


def check_y_dim(y_dim: int) -> None:
    """`y_dim` must divide 1024 so that each coarse bit ORs a whole number of fine bins."""
    if y_dim < 1 or y_dim > SPECTRUM_BITS or SPECTRUM_BITS % y_dim:
        raise ValueError(f"y_dim={y_dim} must divide {SPECTRUM_BITS} (e.g. 32, 64, 128, 256, 512)")


def coarsen(y: np.ndarray, y_dim: int) -> np.ndarray:
    """OR-coarsen [N, 1024] bits to [N, y_dim]: coarse bit j is set if any of its fine bins is.

    Equivalent to binning at 0.2·1024/y_dim ppm; loses nothing but resolution.
    """
    check_y_dim(y_dim)
    n = y.shape[0]
    return y.reshape(n, y_dim, SPECTRUM_BITS // y_dim).max(axis=2)


@dataclass(frozen=True)
class Split:
    """Row indices of one split. `test` is fixed by `test_seed`; train/val vary with `seed`."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int
    test_seed: int
    val_fraction: float
    test_fraction: float


def make_split(
    structures: tuple[str, ...] | list[str],
    *,
    seed: int,
    val_fraction: float = 0.2,
    test_fraction: float = 0.1,
    test_seed: int = 0,
) -> Split:
    """Seeded random split, grouped by structure.

    Rows with the same structure (stereoisomers, repeated spectra) always fall on the same
    side, so validation and test measure molecules the model never saw. The held-out test
    part depends on `test_seed` only, so every repeat and every trial of a study shares it and
    no search decision can see it. `val_fraction` is a share of what the test split leaves,
    so train/validation keep the paper's 80/20 ratio (72/18/10 with the default 10 % test
    split) and `test_fraction=0` gives the paper's plain 80/20 protocol.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    _, group = np.unique(np.asarray(structures), return_inverse=True)
    n_groups = int(group.max()) + 1 if len(group) else 0
    test_groups = np.zeros(n_groups, dtype=bool)
    if test_fraction > 0:
        order = np.random.default_rng(test_seed).permutation(n_groups)
        test_groups[order[: round(n_groups * test_fraction)]] = True
    rest = np.flatnonzero(~test_groups)
    order = np.random.default_rng(seed).permutation(rest)
    n_val = round(len(rest) * val_fraction)  # a share of what the test split left
    val_groups = np.zeros(n_groups, dtype=bool)
    val_groups[order[:n_val]] = True
    rows = np.arange(len(group))
    return Split(
        train=rows[~test_groups[group] & ~val_groups[group]],
        val=rows[val_groups[group]],
        test=rows[test_groups[group]],
        seed=seed,
        test_seed=test_seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
    )
