"""Carbon skeletons ↔ RDKit molecules, and building the paper's CSV from an nmrshiftdb2 SD dump.

RDKit is a core dependency, imported only when a function here runs (the CLI and the
reports start without it); an environment that lacks it gets a user-fixable
`RevstudyError`, not an ImportError trace.

SMILES and grids are read and checked in one place: `hydrocarbon_from_smiles` and
`hydrocarbon_from_grid` (and `smiles_to_grid`, `grid_to_smiles` built on them).

Grid conventions (see `revstudy.data`): the bond between carbons a < b sits at grid[a, b − 1];
digits 1/2/3 are single/double/triple, 6/7 aromatic with Kekulé order 1/2. Kekulé orders are
kept exactly as given (molfiles from nmrshiftdb2 are in Kekulé form); aromatic flags are
RDKit's default aromaticity model, which for a handful of ring systems (bridged annulenes,
some polycycles) differs from the model the paper's file was made with.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from revstudy.data.dataset import GRID, SPECTRUM_BITS, digits_to_string, ppm_to_bin
from revstudy.errors import DataError, RevstudyError

MAX_CARBONS = GRID + 1  # 17: carbon i (0..15) bonds to carbons up to 16
AROMATIC_OFFSET = 5
SPECTRUM_PREFIX = "Spectrum 13C "
MOLECULE_ID_PROP = "nmrshiftdb2 ID"

# Skip reasons, in the order the build report prints them.
UNPARSABLE_MOLECULE = "unparsable molecule"
OTHER_ELEMENTS = "other elements"
CHARGED_OR_RADICAL = "charged or radical atoms"
TOO_MANY_CARBONS = "too many carbons"
NO_13C_SPECTRUM = "no 13C spectrum"
UNPARSABLE_SPECTRUM = "unparsable spectrum"
SHIFT_OUT_OF_RANGE = "shift outside -50..400 ppm"
NO_MOLECULE_ID = "no molecule id"
SKIP_REASONS = (
    UNPARSABLE_MOLECULE,
    NO_MOLECULE_ID,
    OTHER_ELEMENTS,
    CHARGED_OR_RADICAL,
    TOO_MANY_CARBONS,
    NO_13C_SPECTRUM,
    UNPARSABLE_SPECTRUM,
    SHIFT_OUT_OF_RANGE,
)


def require_rdkit(what: str) -> ModuleType:
    """Import rdkit.Chem, or say in one line how to get it."""
    try:
        from rdkit import Chem
    except ImportError as e:
        raise RevstudyError(f"RDKit is needed for {what}: pip install rdkit") from e
    return Chem


def n_carbons(grid: np.ndarray) -> int:
    """Carbons a grid describes: the highest carbon index any bond touches + 1, at least 1.

    A zero grid is therefore a single carbon (methane), which is how the paper's file encodes
    it. Trailing carbons without any bond cannot be represented.
    """
    rows, cols = np.nonzero(np.asarray(grid))
    if len(rows) == 0:
        return 1
    return int(max(rows.max(), cols.max() + 1)) + 1


def grid_to_mol(grid: np.ndarray) -> Any:
    """A sanitized RDKit molecule (carbons, implicit H) from a 16×16 digit grid.

    Bonds take their Kekulé orders from the digits; RDKit then perceives aromaticity. The
    returned molecule keeps the Kekulé bond types with aromatic flags set (as after
    `Kekulize(clearAromaticFlags=False)`), so `mol_to_grid` and molfiles written with
    `kekulize=False` reproduce the original Kekulé orders instead of RDKit's own choice.
    """
    chem = require_rdkit("turning structures into molecules")
    g = np.asarray(grid)
    if g.shape != (GRID, GRID):
        raise ValueError(f"expected a {GRID}x{GRID} grid, got shape {g.shape}")
    order_type = {
        1: chem.BondType.SINGLE,
        2: chem.BondType.DOUBLE,
        3: chem.BondType.TRIPLE,
    }
    rw = chem.RWMol()
    for _ in range(n_carbons(g)):
        rw.AddAtom(chem.Atom(6))
    for i, k in zip(*np.nonzero(g), strict=True):
        digit = int(g[i, k])
        if k < i or digit not in (1, 2, 3, 6, 7):
            raise ValueError(f"grid[{i}, {k}] = {digit}: not an upper-triangle bond digit")
        order = digit - AROMATIC_OFFSET if digit > AROMATIC_OFFSET else digit
        rw.AddBond(int(i), int(k) + 1, order_type[order])
    mol = rw.GetMol()
    try:
        sanitize_keeping_kekule(mol)
    except Exception as e:  # RDKit raises several sanitize exception types
        raise DataError(f"structure is not a valid molecule: {e}") from e
    return mol


def sanitize_keeping_kekule(mol: Any) -> None:
    """Sanitize in place; set aromatic flags from a perceived copy, keep Kekulé bond types.

    For molecules read with `sanitize=False` (e.g. from molfiles): plain sanitizing would
    replace the file's Kekulé orders with RDKit's own choice.
    """
    chem = require_rdkit("sanitizing molecules")
    if any(b.GetBondType() == chem.BondType.AROMATIC for b in mol.GetBonds()):
        chem.SanitizeMol(mol)
        chem.Kekulize(mol, clearAromaticFlags=False)
        return
    chem.SanitizeMol(mol, chem.SANITIZE_ALL ^ chem.SANITIZE_SETAROMATICITY)
    perceived = chem.Mol(mol)
    chem.SetAromaticity(perceived)
    for bond, seen in zip(mol.GetBonds(), perceived.GetBonds(), strict=True):
        bond.SetIsAromatic(seen.GetIsAromatic())
    for atom, seen_atom in zip(mol.GetAtoms(), perceived.GetAtoms(), strict=True):
        atom.SetIsAromatic(seen_atom.GetIsAromatic())


def mol_to_grid(mol: Any) -> np.ndarray:
    """The 16×16 digit grid of a C/H molecule; carbons are numbered in atom order, H dropped.

    Bond types give the Kekulé order (aromatic-typed bonds are kekulized by RDKit first); a bond
    flagged aromatic gets Kekulé order + 5. Raises `DataError` for other elements or more than
    17 carbons.
    """
    chem = require_rdkit("turning molecules into structures")
    m = chem.Mol(mol)
    if any(b.GetBondType() == chem.BondType.AROMATIC for b in m.GetBonds()):
        chem.Kekulize(m, clearAromaticFlags=False)
    index: dict[int, int] = {}
    for atom in m.GetAtoms():
        sym = atom.GetSymbol()
        if sym == "C":
            index[atom.GetIdx()] = len(index)
        elif sym != "H":
            raise DataError(f"molecule has element {sym}: only C and H can be encoded")
    if not index:
        raise DataError("molecule has no carbon atoms")
    if len(index) > MAX_CARBONS:
        raise DataError(f"molecule has {len(index)} carbons: at most {MAX_CARBONS} fit the grid")
    grid = np.zeros((GRID, GRID), dtype=np.int8)
    kekule = {
        chem.BondType.SINGLE: 1,
        chem.BondType.DOUBLE: 2,
        chem.BondType.TRIPLE: 3,
    }
    for bond in m.GetBonds():
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        if a not in index or b not in index:
            continue  # C–H
        a, b = sorted((index[a], index[b]))
        order = kekule.get(bond.GetBondType())
        if order is None:
            raise DataError(f"bond {a}-{b} has unsupported type {bond.GetBondType()}")
        if bond.GetIsAromatic():
            if order == 3:
                raise DataError(f"bond {a}-{b} is an aromatic triple bond")
            order += AROMATIC_OFFSET
        grid[a, b - 1] = order
    return grid


def canonical_smiles(mol: Any) -> str:
    """One SMILES per molecule, whatever Kekulé form it was built from.

    `grid_to_mol` keeps the data file's Kekulé bond types, and RDKit's canonical ranking
    sees them: o-xylene's two Kekulé forms gave `Cc1c(C)cccc1` and `Cc1ccccc1C`. Re-parsing
    the SMILES types every ring bond AROMATIC first (`Chem.CanonSmiles`), so both agree."""
    chem = require_rdkit("SMILES output")
    return str(chem.CanonSmiles(chem.MolToSmiles(mol)))


# --- SMILES <-> grids: the one place either is read and checked ---------------------------


def _quiet() -> Any:
    """RDKit's own stderr logging off for a block: the `DataError` says what is wrong, once."""
    from rdkit import rdBase

    return rdBase.BlockLogs()


def _fragments(count: int) -> str:
    return f"{count} fragments, not one molecule (give one per line)"


def _odd_character(smiles: str) -> str | None:
    """What makes `smiles` more than one SMILES word, or None (an empty one has no carbon
    atoms, as RDKit reads it)."""
    for ch in smiles:
        if ch.isspace():
            return "contains white space"
        if not ch.isascii() or not ch.isprintable():
            return f"contains the character {ch!r}"
    return None


def hydrocarbon_from_smiles(smiles: str, *, fragments: bool = False) -> tuple[np.ndarray, str]:
    """(grid, canonical SMILES) of a C/H SMILES; carbons are numbered in SMILES order.

    Raises a one-line `DataError` naming the SMILES when RDKit cannot parse it, it has other
    elements, no carbon or more than `MAX_CARBONS`, charged or radical atoms, several
    fragments (unless `fragments`), or a bond the grid cannot encode. The SMILES returned is
    `canonical_smiles` of the molecule as written, so what the grid drops (stereo marks,
    isotopes) is still shown.
    """
    where = f"SMILES {smiles!r}"
    if not isinstance(smiles, str):
        raise DataError(f"{where}: expected a string")
    odd = _odd_character(smiles)
    if odd:  # RDKit reads up to a space and takes the rest for a name: 'CC O' is ethane
        raise DataError(f"{where}: {odd}; a SMILES is one word of ASCII characters")
    chem = require_rdkit("SMILES input")
    with _quiet():
        mol = chem.MolFromSmiles(smiles)
    if mol is None:
        raise DataError(f"{where}: not parsable")
    atoms = list(mol.GetAtoms())
    others = sorted({a.GetSymbol() for a in atoms} - {"C", "H"})
    if others:
        noun = "element" if len(others) == 1 else "elements"
        raise DataError(f"{where}: not a hydrocarbon (has {noun} {', '.join(others)})")
    n_c = sum(a.GetSymbol() == "C" for a in atoms)
    if n_c == 0:
        raise DataError(f"{where}: no carbon atoms")
    if n_c > MAX_CARBONS:
        raise DataError(f"{where}: {n_c} carbons, at most {MAX_CARBONS} fit the grid")
    if any(a.GetFormalCharge() or a.GetNumRadicalElectrons() for a in atoms):
        raise DataError(f"{where}: charged or radical atoms")
    parts = len(chem.GetMolFrags(mol))
    if parts > 1 and not fragments:
        raise DataError(f"{where}: {_fragments(parts)}")
    try:
        grid = mol_to_grid(mol)
    except DataError as e:
        raise DataError(f"{where}: {e}") from None
    return grid, canonical_smiles(mol)


def hydrocarbon_from_grid(grid: np.ndarray, *, fragments: bool = False) -> tuple[np.ndarray, str]:
    """(grid as RDKit reads it, canonical SMILES) of a 16×16 digit grid.

    The grid returned has the input's Kekulé orders and RDKit's aromatic flags (digits 6/7
    where RDKit perceives aromaticity), as the data file encodes molecules. Raises a
    one-line `DataError` when the grid holds a digit that is no bond, RDKit rejects the
    molecule (e.g. a pentavalent carbon), it has several fragments (unless `fragments`), or
    it cannot be encoded back (a triple bond RDKit calls aromatic).
    """
    require_rdkit("SMILES output")
    with _quiet():
        try:
            mol = grid_to_mol(np.asarray(grid))
        except ValueError as e:
            raise DataError(f"structure: {e}") from None
        smiles = canonical_smiles(mol)
        if "." in smiles and not fragments:
            raise DataError(f"structure {smiles}: {_fragments(smiles.count('.') + 1)}")
        try:
            regrid = mol_to_grid(mol)
        except DataError as e:
            raise DataError(f"structure {smiles}: {e}") from None
    return regrid, smiles


def grid_to_smiles(grid: np.ndarray, *, fragments: bool = False) -> str:
    """Canonical SMILES of a grid (aromatic form), e.g. for reports and de-duplication;
    `DataError` as `hydrocarbon_from_grid`."""
    return hydrocarbon_from_grid(grid, fragments=fragments)[1]


def structure_to_smiles(structure: str, *, fragments: bool = False) -> str:
    """Canonical SMILES of a 136-digit structure string (column C)."""
    from revstudy.data.dataset import structure_digits

    return grid_to_smiles(structure_digits(structure), fragments=fragments)


def smiles_to_grid(smiles: str, *, fragments: bool = False) -> np.ndarray:
    """Grid of a C/H SMILES; carbons in SMILES order; `DataError` as
    `hydrocarbon_from_smiles`."""
    return hydrocarbon_from_smiles(smiles, fragments=fragments)[0]


def smiles_to_structure(smiles: str, *, fragments: bool = False) -> str:
    """136-digit structure string (column C) of a C/H SMILES."""
    return digits_to_string(smiles_to_grid(smiles, fragments=fragments))


def kekule_molblock(mol: Any) -> str:
    """Molfile text with the molecule's own Kekulé orders (RDKit would otherwise re-kekulize
    or write aromatic bond type 4, losing the orders the grid keeps)."""
    chem = require_rdkit("writing molfiles")
    m = chem.Mol(mol)
    if any(b.GetBondType() == chem.BondType.AROMATIC for b in m.GetBonds()):
        chem.Kekulize(m, clearAromaticFlags=False)
    for bond in m.GetBonds():
        bond.SetIsAromatic(False)
    for atom in m.GetAtoms():
        atom.SetIsAromatic(False)
    return str(chem.MolToMolBlock(m, kekulize=False))


# --- nmrshiftdb2 SD dumps -----------------------------------------------------------------


@dataclass
class BuildReport:
    """What `build_csv_from_sdf` wrote and what it skipped, per reason."""

    out_csv: str
    records: int = 0
    molecules_written: int = 0
    rows_written: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {
            "out_csv": self.out_csv,
            "records": self.records,
            "molecules_written": self.molecules_written,
            "rows_written": self.rows_written,
            "skipped": dict(self.skipped),
        }


# 13C shifts of real compounds lie within about -10..240 ppm; beyond these limits a value is
# a typo or an attack (1e308 overflowed the bin arithmetic, 1e300 was clipped to the last
# bin): the record is skipped and counted, never binned
SHIFT_LIMITS = (-50.0, 400.0)


class ShiftOutOfRange(ValueError):
    """A 13C shift outside `SHIFT_LIMITS`."""


def parse_sdf_spectrum(value: str, n_atoms: int) -> list[float]:
    """Shifts of an nmrshiftdb2 spectrum value `shift;intensity+mult;atomindex|...`.

    Raises ValueError when a peak has no finite shift, or its atom index is not an atom of
    the molfile (0-based, explicit hydrogens included): such a spectrum does not belong to
    the structure it is attached to.
    """
    shifts = []
    for peak in value.replace("\n", "").split("|"):
        peak = peak.strip()
        if not peak:
            continue
        fields = peak.split(";")
        shift = float(fields[0])
        if not math.isfinite(shift):
            raise ValueError(f"shift {fields[0]!r} is not finite")
        if not SHIFT_LIMITS[0] <= shift <= SHIFT_LIMITS[1]:
            raise ShiftOutOfRange(f"shift {shift:g} ppm outside {SHIFT_LIMITS} ppm")
        if len(fields) >= 3 and fields[2].strip():
            atom = int(fields[2])
            if not 0 <= atom < n_atoms:
                raise ValueError(f"atom index {atom} outside 0..{n_atoms - 1}")
        shifts.append(shift)
    if not shifts:
        raise ValueError("no peaks")
    return shifts


def shifts_to_bits(shifts: Iterable[float]) -> str:
    """1024-bit spectrum string: a bin is 1 if any shift falls in it."""
    bits = ["0"] * SPECTRUM_BITS
    for s in shifts:
        bits[ppm_to_bin(s)] = "1"
    return "".join(bits)


def _spectrum_props(mol: Any) -> list[tuple[int, str]]:
    """(spectrum id, value) for each `Spectrum 13C N` property, in id order."""
    found = []
    for name in mol.GetPropNames():
        if name.startswith(SPECTRUM_PREFIX):
            sid = name[len(SPECTRUM_PREFIX) :].strip()
            if sid.isdigit():
                found.append((int(sid), mol.GetProp(name)))
    return sorted(found)


def _rows_from_record(
    mol: Any, max_carbons: int, elements: frozenset[str]
) -> tuple[str | None, list[tuple[str, str, str, str]]]:
    """(skip reason or None, CSV rows) for one SD record."""
    if mol is None:
        return UNPARSABLE_MOLECULE, []
    try:
        sanitize_keeping_kekule(mol)
    except Exception:
        return UNPARSABLE_MOLECULE, []
    mol_id = mol.GetProp(MOLECULE_ID_PROP).strip() if mol.HasProp(MOLECULE_ID_PROP) else ""
    if not mol_id.isdigit():
        return NO_MOLECULE_ID, []
    atoms = list(mol.GetAtoms())
    if any(a.GetSymbol() not in elements and a.GetSymbol() != "H" for a in atoms):
        return OTHER_ELEMENTS, []
    if any(a.GetFormalCharge() or a.GetNumRadicalElectrons() for a in atoms):
        return CHARGED_OR_RADICAL, []
    carbons = sum(a.GetSymbol() == "C" for a in atoms)
    if carbons > max_carbons:
        return TOO_MANY_CARBONS, []
    spectra = _spectrum_props(mol)
    if not spectra:
        return NO_13C_SPECTRUM, []
    try:
        parsed = [(sid, parse_sdf_spectrum(v, len(atoms))) for sid, v in spectra]
    except ShiftOutOfRange:
        return SHIFT_OUT_OF_RANGE, []
    except ValueError:
        return UNPARSABLE_SPECTRUM, []
    try:
        structure = digits_to_string(mol_to_grid(mol))
    except DataError:
        return UNPARSABLE_MOLECULE, []
    return None, [(mol_id, str(sid), structure, shifts_to_bits(s)) for sid, s in parsed]


def _supplier(chem: ModuleType, sdf: Path) -> Iterator[Any]:
    # sanitize=False so that we can keep the molfile's Kekulé orders; removeHs=False keeps the
    # atom indices the spectra refer to.
    try:
        supplier = chem.SDMolSupplier(str(sdf), sanitize=False, removeHs=False)
    except OSError as e:  # RDKit refuses empty or unreadable files up front
        raise DataError(f"{sdf}: not a readable SD file ({e})") from e
    return iter(supplier)


def build_csv_from_sdf(
    sdf_path: str | Path,
    out_csv: str | Path,
    max_carbons: int = MAX_CARBONS,
    elements: Iterable[str] = ("C", "H"),
) -> BuildReport:
    """Write the paper's CSV (A,B,C,D) from an nmrshiftdb2 SD dump, one row per 13C spectrum.

    Applies the paper's filter: only `elements`, at most `max_carbons` carbons, at least one
    parsable 13C spectrum. The output appears atomically, so a failed build leaves no
    half-written CSV; a build that keeps no record is an error naming why each was skipped
    (a header alone is a file no reader takes).
    """
    chem = require_rdkit("building a CSV from an SD file")
    sdf = Path(sdf_path)
    if not sdf.is_file():
        raise DataError(f"{sdf}: SD file not found")
    if sdf.stat().st_size == 0:
        raise DataError(f"{sdf}: no SD records found (the file is empty)")
    allowed = frozenset(e.strip() for e in elements if e.strip())
    if "C" not in allowed or not allowed <= {"C", "H"}:
        raise DataError(
            f"elements {','.join(sorted(allowed))}: the grid encodes carbon skeletons only, "
            "so elements must be C,H (hydrogens are always allowed)"
        )
    if not 1 <= max_carbons <= MAX_CARBONS:
        raise DataError(f"max carbons {max_carbons}: must be between 1 and {MAX_CARBONS}")
    out = Path(out_csv)
    report = BuildReport(out_csv=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    seen: set[tuple[str, str]] = set()
    from rdkit import rdBase

    quiet = rdBase.BlockLogs()  # we count problems per reason instead of logging each one
    try:
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["A", "B", "C", "D"])
            for mol in _supplier(chem, sdf):
                report.records += 1
                reason, rows = _rows_from_record(mol, max_carbons, allowed)
                if reason is not None:
                    report.skipped[reason] += 1
                    continue
                fresh = [r for r in rows if (r[0], r[1]) not in seen]
                seen.update((r[0], r[1]) for r in fresh)
                writer.writerows(fresh)
                report.rows_written += len(fresh)
                report.molecules_written += 1 if fresh else 0
        if report.records == 0:
            raise DataError(f"{sdf}: no SD records found")
        if report.rows_written == 0:  # a header alone: every reader refuses it ("no data rows")
            why = "; ".join(f"{n} {reason}" for reason, n in report.skipped.items() if n)
            raise DataError(
                f"{sdf}: none of its {report.records} SD record(s) gave a row (skipped: "
                f"{why}); {out} not written"
            )
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        del quiet
    return report
