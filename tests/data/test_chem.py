"""Grid ↔ molecule conversion and the nmrshiftdb2 SD → CSV build (made-up molecules/shifts)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from revstudy.data.dataset import digits_to_string, ppm_to_bin, read_dataset, structure_digits
from revstudy.errors import DataError, RevstudyError

Chem = pytest.importorskip("rdkit.Chem")

from revstudy.data.chem import (  # noqa: E402 - after the RDKit skip
    OTHER_ELEMENTS,
    TOO_MANY_CARBONS,
    build_csv_from_sdf,
    grid_to_mol,
    grid_to_smiles,
    hydrocarbon_from_grid,
    hydrocarbon_from_smiles,
    kekule_molblock,
    mol_to_grid,
    n_carbons,
    parse_sdf_spectrum,
    require_rdkit,
    sanitize_keeping_kekule,
    shifts_to_bits,
    smiles_to_grid,
    smiles_to_structure,
    structure_to_smiles,
)

SHARED_CSV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "reversibledata.csv"


def _grid(bonds: dict[tuple[int, int], int]) -> np.ndarray:
    """Grid from {(carbon a, carbon b): digit}, a < b."""
    g = np.zeros((16, 16), dtype=np.int8)
    for (a, b), d in bonds.items():
        g[a, b - 1] = d
    return g


def test_zero_grid_is_methane() -> None:
    zero = np.zeros((16, 16), dtype=np.int8)
    assert n_carbons(zero) == 1
    assert grid_to_smiles(zero) == "C"
    assert np.array_equal(mol_to_grid(grid_to_mol(zero)), zero)


def test_bond_placement_and_orders() -> None:
    g = smiles_to_grid("CC#CC=C")
    assert g[0, 0] == 1 and g[1, 1] == 3 and g[2, 2] == 1 and g[3, 3] == 2
    assert n_carbons(g) == 5
    assert grid_to_smiles(g) == "C=CC#CC"


@pytest.mark.parametrize(
    "kekule",
    [
        {(0, 1): 7, (1, 2): 6, (2, 3): 7, (3, 4): 6, (4, 5): 7, (0, 5): 6},
        {(0, 1): 6, (1, 2): 7, (2, 3): 6, (3, 4): 7, (4, 5): 6, (0, 5): 7},
    ],
)
def test_both_benzene_kekule_forms_survive(kekule: dict[tuple[int, int], int]) -> None:
    g = _grid(kekule)
    mol = grid_to_mol(g)
    assert Chem.MolToSmiles(mol) == "c1ccccc1"
    assert np.array_equal(mol_to_grid(mol), g)
    # and through a molfile with explicit hydrogens appended after the carbons
    back = Chem.MolFromMolBlock(kekule_molblock(Chem.AddHs(mol)), sanitize=False, removeHs=False)
    sanitize_keeping_kekule(back)
    assert np.array_equal(mol_to_grid(back), g)


@pytest.mark.parametrize(
    "smiles", ["C", "CC", "C=C=CC#C", "CC(C)(C)C", "c1ccc2ccccc2c1", "C1CC1C=C", "CC.CC"]
)
def test_smiles_round_trip(smiles: str) -> None:
    s = smiles_to_structure(smiles, fragments=True)
    assert len(s) == 136
    assert Chem.MolToSmiles(Chem.MolFromSmiles(smiles)) == structure_to_smiles(s, fragments=True)


def test_several_fragments_only_when_asked_for() -> None:
    with pytest.raises(DataError, match=r"^SMILES 'CC\.CC': 2 fragments, not one molecule"):
        smiles_to_grid("CC.CC")
    two = smiles_to_grid("CC.CC", fragments=True)
    assert two[0, 0] == 1 and two[2, 2] == 1 and (two != 0).sum() == 2  # bonds 0-1 and 2-3
    with pytest.raises(DataError, match=r"^structure CC\.CC: 2 fragments"):
        grid_to_smiles(two)
    assert grid_to_smiles(two, fragments=True) == "CC.CC"


@pytest.mark.parametrize(
    ("smiles", "needle"),
    [
        ("C1CC", "not parsable"),
        ("CCO", "not a hydrocarbon (has element O)"),
        ("NCC(=O)O", "not a hydrocarbon (has elements N, O)"),
        ("C" * 18, "18 carbons, at most 17 fit the grid"),
        ("[H][H]", "no carbon atoms"),
        ("", "no carbon atoms"),
        ("C[CH2+]", "charged or radical atoms"),
        ("C[CH2]", "charged or radical atoms"),
        ("C.C", "2 fragments"),
    ],
)
def test_smiles_errors_name_the_input_in_one_line(smiles: str, needle: str) -> None:
    with pytest.raises(DataError) as e:
        hydrocarbon_from_smiles(smiles)
    text = str(e.value)
    assert text.startswith(f"SMILES {smiles!r}: ") and needle in text and "\n" not in text


def test_a_non_string_smiles_is_a_data_error() -> None:
    with pytest.raises(DataError, match="SMILES 5: expected a string"):
        hydrocarbon_from_smiles(5)  # type: ignore[arg-type]


def test_hydrocarbon_from_smiles_keeps_what_the_grid_drops_in_its_smiles() -> None:
    """The SMILES shown is the molecule as written (canonical): stereo and isotopes stay,
    the grid has only the skeleton."""
    grid, smiles = hydrocarbon_from_smiles("C/C=C/C")
    assert smiles == "C/C=C/C"
    assert np.array_equal(grid, smiles_to_grid("CC=CC"))
    assert hydrocarbon_from_smiles("[13CH4]")[1] == "[13CH4]"
    # every spelling of one molecule: one SMILES
    assert {hydrocarbon_from_smiles(s)[1] for s in ("Cc1ccccc1", "c1ccccc1C", "CC1=CC=CC=C1")} == {
        "Cc1ccccc1"
    }


def test_hydrocarbon_from_grid_sets_rdkit_aromatic_flags() -> None:
    """Benzene written with Kekulé digits 1/2 comes back with 6/7 (RDKit calls it aromatic),
    the Kekulé orders kept."""
    ring = {(0, 1): 2, (1, 2): 1, (2, 3): 2, (3, 4): 1, (4, 5): 2, (0, 5): 1}
    regrid, smiles = hydrocarbon_from_grid(_grid(ring))
    assert smiles == "c1ccccc1"
    assert np.array_equal(regrid, _grid({k: v + 5 for k, v in ring.items()}))


@pytest.mark.parametrize(
    ("bonds", "needle"),
    [
        ({(0, 1): 3, (0, 2): 3}, "structure is not a valid molecule"),  # pentavalent carbon
        ({(0, 1): 4}, "grid[0, 0] = 4: not an upper-triangle bond digit"),
    ],
)
def test_grid_errors_are_one_line_data_errors(bonds: dict, needle: str) -> None:
    with pytest.raises(DataError) as e:
        grid_to_smiles(_grid(bonds))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_grid_of_the_wrong_shape_is_a_data_error() -> None:
    with pytest.raises(DataError, match="expected a 16x16 grid"):
        grid_to_smiles(np.zeros((4, 4), dtype=np.int8))


def test_parse_sdf_spectrum_checks_atoms_and_shifts() -> None:
    assert parse_sdf_spectrum("13.5;0.0Q;0|22.9;0.0T;1|\n", 5) == [13.5, 22.9]
    assert parse_sdf_spectrum("40.1;0;", 1) == [40.1]  # no atom index: not checked
    for bad, needle in [
        ("1;0;5|", "atom index 5 outside 0..4"),
        ("nan;0;0|", "not finite"),
        ("|", "no peaks"),
    ]:
        with pytest.raises(ValueError, match=needle):
            parse_sdf_spectrum(bad, 5)


def test_aromatic_input_is_kekulized() -> None:
    g = smiles_to_grid("c1ccccc1C")
    assert set(np.unique(g)) == {0, 1, 6, 7}
    assert (g == 6).sum() == 3 and (g == 7).sum() == 3


def test_mol_to_grid_limits() -> None:
    assert n_carbons(smiles_to_grid("C" * 17)) == 17
    with pytest.raises(DataError, match="18 carbons"):
        smiles_to_grid("C" * 18)
    with pytest.raises(DataError, match="element O"):
        smiles_to_grid("CCO")
    with pytest.raises(DataError, match="not parsable"):
        smiles_to_grid("C1CC")
    with pytest.raises(DataError, match="molecule has element O"):
        mol_to_grid(Chem.MolFromSmiles("CCO"))


def test_invalid_grid_is_a_data_error() -> None:
    with pytest.raises(DataError, match="not a valid molecule"):
        grid_to_mol(_grid({(0, 1): 3, (0, 2): 3}))  # pentavalent carbon


def test_missing_rdkit_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rdkit", None)
    with pytest.raises(RevstudyError, match=r"RDKit is needed for X: pip install rdkit"):
        require_rdkit("X")
    for convert in (lambda: smiles_to_grid("CC"), lambda: grid_to_smiles(_grid({(0, 1): 1}))):
        with pytest.raises(RevstudyError, match="RDKit is needed for SMILES"):
            convert()


# --- SD build --------------------------------------------------------------------------------


def _record(mol: object, props: dict[str, str]) -> str:
    text = kekule_molblock(mol)
    for k, v in props.items():
        text += f"> <{k}>\n{v}\n\n"
    return text + "$$$$\n"


def _peaks(shifts: list[float], atoms: list[int]) -> str:
    return "".join(f"{s};0.0Q;{a}|" for s, a in zip(shifts, atoms, strict=True))


def _h_first(smiles: str) -> object:
    """Molecule with explicit H listed first, so carbon indices in the molfile are not 0..n-1."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    hs = [a.GetIdx() for a in mol.GetAtoms() if a.GetSymbol() == "H"]
    cs = [a.GetIdx() for a in mol.GetAtoms() if a.GetSymbol() != "H"]
    return Chem.RenumberAtoms(mol, hs + cs)


def test_build_csv_from_sdf(tmp_path: Path) -> None:
    toluene = Chem.AddHs(Chem.MolFromSmiles("Cc1ccccc1"))
    propyne = _h_first("CC#C")
    records = [
        _record(toluene, {"nmrshiftdb2 ID": "11", "Spectrum 13C 5": _peaks([21.4, 137.9], [0, 1])}),
        _record(
            propyne,
            {
                "nmrshiftdb2 ID": "12",
                "Spectrum 13C 7": _peaks([3.1, 80.2, 68.9], [4, 5, 6]),
                "Spectrum 13C 9": _peaks([-1.0, 250.0], [4, 6]),
                "Spectrum 1H 2": "1.8;0.0;0|",
            },
        ),
        _record(Chem.MolFromSmiles("CCO"), {"nmrshiftdb2 ID": "13", "Spectrum 13C 1": "1;0;0|"}),
        _record(Chem.MolFromSmiles("C" * 18), {"nmrshiftdb2 ID": "14", "Spectrum 13C 1": "1;0;0|"}),
        _record(Chem.MolFromSmiles("CCC"), {"nmrshiftdb2 ID": "15"}),
        _record(Chem.MolFromSmiles("CCCC"), {"nmrshiftdb2 ID": "16", "Spectrum 13C 1": "x;0;0|"}),
        _record(Chem.MolFromSmiles("CCCC"), {"nmrshiftdb2 ID": "17", "Spectrum 13C 1": "1;0;99|"}),
        # issue #24.7: overflowed the bin arithmetic and failed the whole build
        _record(
            Chem.MolFromSmiles("CCCC"), {"nmrshiftdb2 ID": "19", "Spectrum 13C 1": "1e308;0;0|"}
        ),
        "garbage\n\n\n  x  y  0  0  0  0  0  0  0  0999 V2000\nM  END\n$$$$\n",
        _record(
            Chem.MolFromSmiles("C[CH2+]"), {"nmrshiftdb2 ID": "18", "Spectrum 13C 1": "1;0;0|"}
        ),
    ]
    sdf = tmp_path / "dump.sdf"
    sdf.write_text("".join(records))
    out = tmp_path / "out" / "built.csv"
    report = build_csv_from_sdf(sdf, out)
    assert report.records == 10
    assert report.molecules_written == 2 and report.rows_written == 3
    assert report.skipped == {
        "unparsable molecule": 1,
        "no molecule id": 0,
        OTHER_ELEMENTS: 1,
        "charged or radical atoms": 1,
        TOO_MANY_CARBONS: 1,
        "no 13C spectrum": 1,
        "unparsable spectrum": 2,
        "shift outside -50..400 ppm": 1,
    }
    ds = read_dataset(out)
    assert ds.molecule_ids.tolist() == [11, 12, 12]
    assert ds.spectrum_ids.tolist() == [5, 7, 9]
    assert ds.structures[0] == smiles_to_structure("Cc1ccccc1")
    assert ds.structures[1] == ds.structures[2] == smiles_to_structure("CC#C")
    d1 = ds.spectra[1]
    assert [i for i, b in enumerate(d1) if b == "1"] == sorted(
        ppm_to_bin(s) for s in (3.1, 80.2, 68.9)
    )
    assert ds.spectra[2] == shifts_to_bits([0.0, 300.0])  # clipped to bins 0 and 1023
    assert [p.name for p in out.parent.iterdir()] == ["built.csv"]


def test_build_filters(tmp_path: Path) -> None:
    sdf = tmp_path / "d.sdf"
    sdf.write_text(
        _record(Chem.MolFromSmiles("CCCC"), {"nmrshiftdb2 ID": "1", "Spectrum 13C 0": "1;0;0|"})
    )
    # nothing kept: an error naming why, and no header-only file (read_dataset refuses one)
    said = rf"d\.sdf: none of its 1 SD record\(s\) gave a row \(skipped: 1 {TOO_MANY_CARBONS}\); "
    with pytest.raises(DataError, match=said + r".*o\.csv not written$"):
        build_csv_from_sdf(sdf, tmp_path / "o.csv", max_carbons=3)
    assert sorted(tmp_path.iterdir()) == [sdf]  # neither the CSV nor its temporary file
    with pytest.raises(DataError, match="elements"):
        build_csv_from_sdf(sdf, tmp_path / "o.csv", elements=["C", "O"])
    with pytest.raises(DataError, match="not found"):
        build_csv_from_sdf(tmp_path / "none.sdf", tmp_path / "o.csv")
    empty = tmp_path / "empty.sdf"
    empty.write_text("")
    with pytest.raises(DataError, match="no SD records"):
        build_csv_from_sdf(empty, tmp_path / "o2.csv")
    assert not (tmp_path / "o2.csv").exists()


# --- round trip over the shared file --------------------------------------------------------


def _kekule_orders(s: str) -> str:
    return s.replace("6", "1").replace("7", "2")


def test_round_trip_of_the_shared_file(tmp_path: Path) -> None:
    """Every row → molecule + SD record with a made-up spectrum (bin centres) → rebuilt CSV.

    Kekulé orders and spectra must match on every row. Aromatic flags must match wherever
    RDKit's aromaticity model agrees with the one the file was made with; the few rows where
    it does not (e.g. bridged annulenes) are identified independently and must be rare.
    """
    if not SHARED_CSV.is_file():
        pytest.skip(f"shared data file not present at {SHARED_CSV}")
    ds = read_dataset(SHARED_CSV)
    parts = []
    for a, b, c, d in zip(ds.molecule_ids, ds.spectrum_ids, ds.structures, ds.spectra, strict=True):
        mol = Chem.AddHs(grid_to_mol(structure_digits(c)))  # hydrogens after the carbons
        carbons = sum(at.GetSymbol() == "C" for at in mol.GetAtoms())
        bins = [i for i, bit in enumerate(d) if bit == "1"]
        peaks = _peaks([(i + 0.5) / 5 for i in bins], [j % carbons for j in range(len(bins))])
        parts.append(_record(mol, {"nmrshiftdb2 ID": str(a), f"Spectrum 13C {b}": peaks}))
    sdf = tmp_path / "round.sdf"
    sdf.write_text("".join(parts))
    report = build_csv_from_sdf(sdf, tmp_path / "round.csv")
    assert report.rows_written == len(ds), report.skipped
    back = read_dataset(tmp_path / "round.csv")
    assert back.molecule_ids.tolist() == ds.molecule_ids.tolist()
    assert back.spectrum_ids.tolist() == ds.spectrum_ids.tolist()
    assert back.spectra == ds.spectra
    model_differs = []
    for orig, new in zip(ds.structures, back.structures, strict=True):
        assert _kekule_orders(new) == _kekule_orders(orig)
        if new != orig:
            model_differs.append(orig)
            assert digits_to_string(mol_to_grid(grid_to_mol(structure_digits(orig)))) == new
    assert len(model_differs) <= 0.005 * len(ds)


def test_both_kekule_forms_of_one_molecule_give_one_smiles() -> None:
    """o-xylene from either Kekulé form (digits 6/7 swapped around the ring): one string."""
    pytest.importorskip("rdkit.Chem")
    from rdkit import Chem

    from revstudy.data.chem import grid_to_smiles
    from revstudy.elucidation.elucidate import canonical

    forms = []
    for first in (7, 6):  # bond 0-1 double, or single
        grid = np.zeros((16, 16), dtype=int)
        ring = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (0, 5)]
        for n, (a, b) in enumerate(ring):
            grid[a, b - 1] = first if n % 2 == 0 else 13 - first
        grid[0, 6 - 1] = 1  # methyl on carbon 0 (carbon 6)
        grid[1, 7 - 1] = 1  # methyl on carbon 1 (carbon 7)
        forms.append(grid)
    assert not np.array_equal(forms[0], forms[1])
    smiles = {grid_to_smiles(g) for g in forms}
    assert smiles == {Chem.CanonSmiles("Cc1ccccc1C")}
    assert {canonical(g)[0] for g in forms} == smiles  # type: ignore[index]
