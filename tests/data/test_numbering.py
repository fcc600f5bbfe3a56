"""Carbon numberings: renumbering checked against RDKit's own `RenumberAtoms`, the canonical
order against many spellings of one molecule, and the split grouping by molecule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem

from revstudy.data.chem import grid_to_mol, grid_to_smiles, mol_to_grid, smiles_to_grid
from revstudy.data.dataset import (
    digits_to_string,
    encode_structures,
    grid_to_channels,
    make_split,
    structure_digits,
)
from revstudy.data.numbering import (
    canonical_structure,
    carbon_counts,
    in_order,
    molecule_keys,
    order_inputs,
    random_permutations,
    relabel,
    relabelled,
    renumber,
)
from revstudy.errors import DataError

# aromatic, fused, bridged, spiro, strained, cumulated, tiny and 17-carbon molecules
MOLECULES = [
    "C",
    "CC",
    "C#C",
    "CCCC",
    "Cc1ccccc1",
    "Cc1ccccc1C",
    "c1ccc2ccccc2c1",
    "C1=CC=CCC1",
    "C1CC2CCC1C2",
    "C1CCC2(CC1)CCCC2",
    "C=C=CC",
    "C1CC1C#CC",
    "CC(C)(C)c1ccc(C=C)cc1",
    "CCCCCCCCCCCCCCCCC",
    "c1ccc2c(c1)ccc1ccccc12",
]


def _grid(smiles: str) -> np.ndarray:
    return smiles_to_grid(smiles)


@pytest.mark.parametrize("smiles", MOLECULES)
def test_renumber_agrees_with_rdkit_renumber_atoms(smiles: str) -> None:
    """The grid of a molecule renumbered by RDKit is the grid renumbered here."""
    grid = _grid(smiles)
    n = int(carbon_counts(torch.from_numpy(grid[None]))[0])
    assert n == Chem.MolFromSmiles(smiles).GetNumAtoms()
    rng = np.random.default_rng(len(smiles))
    for _ in range(5):
        order = rng.permutation(n)
        perm = np.concatenate([order, np.arange(n, 17)])
        mine = renumber(torch.from_numpy(grid[None]).long(), torch.from_numpy(perm[None]))[0]
        theirs = mol_to_grid(Chem.RenumberAtoms(grid_to_mol(grid), [int(i) for i in order]))
        np.testing.assert_array_equal(mine.numpy(), theirs)


@pytest.mark.parametrize("smiles", MOLECULES)
def test_relabelled_channels_decode_to_the_same_molecule(smiles: str) -> None:
    x = grid_to_channels(_grid(smiles)[None]).repeat(8, axis=0)
    moved = relabel(torch.from_numpy(x), torch.Generator().manual_seed(3)).numpy()
    assert moved.shape == x.shape and set(np.unique(moved)) <= {0.0, 1.0}
    from revstudy.data.dataset import channels_to_grid

    truth = grid_to_smiles(_grid(smiles))
    assert {grid_to_smiles(g) for g in channels_to_grid(moved)} == {truth}
    if len(smiles) > 8:  # asymmetric and large enough: some draw must move a bond
        assert any(not np.array_equal(m, x[0]) for m in moved)


def test_permutations_shuffle_only_each_molecules_own_carbons() -> None:
    counts = torch.tensor([1, 2, 5, 17, 9])
    perms = random_permutations(counts, torch.Generator().manual_seed(0))
    for n, p in zip(counts.tolist(), perms.tolist(), strict=True):
        assert sorted(p[:n]) == list(range(n))
        assert p[n:] == list(range(n, 17))


def test_relabel_is_seeded_and_vectorised_over_the_batch() -> None:
    x = encode_structures([digits_to_string(_grid(s)) for s in MOLECULES])
    a, b = relabelled(x, seed=1), relabelled(x, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(relabelled(x, seed=1), relabelled(x, seed=2))


@pytest.mark.parametrize(
    "spellings",
    [
        ["CC(C)CCCC", "CCCCC(C)C", "C(CCC(C)C)C"],
        ["Cc1ccccc1C", "c1ccc(C)c(C)c1", "C1=CC=C(C)C(C)=C1", "CC1=C(C)C=CC=C1"],
        ["c1ccc2ccccc2c1", "C1=CC=C2C=CC=CC2=C1", "C1=CC2=CC=CC=C2C=C1"],
        ["C1CC2CCC1C2", "C2CC1CCC2C1"],
    ],
)
def test_canonical_order_is_one_grid_per_molecule(spellings: list[str]) -> None:
    """Different SMILES (atom orders, Kekulé forms) and random renumberings: one grid."""
    structures = [digits_to_string(_grid(s)) for s in spellings]
    assert len({canonical_structure(s) for s in structures}) == 1
    x = encode_structures(structures)
    moved = relabelled(x, seed=7)
    canon = order_inputs(np.concatenate([x, moved]), "canonical")
    assert all(np.array_equal(c, canon[0]) for c in canon)
    assert grid_to_smiles(structure_digits(canonical_structure(structures[0]))) == (
        grid_to_smiles(_grid(spellings[0]))
    )


def test_canonical_order_keeps_bonds_near_the_diagonal(real_csv) -> None:
    """The reason for the SMILES order: bonded carbons are close in the numbering."""
    from revstudy.data.dataset import read_dataset

    ds = read_dataset(real_csv)

    def span(structures: tuple[str, ...]) -> float:
        gaps = []
        for s in structures:
            r, c = np.nonzero(structure_digits(s))
            gaps.extend(c + 1 - r)
        return float(np.mean(gaps))

    assert span(in_order(ds.structures, "canonical")) < 0.7 * span(ds.structures)


def test_source_order_is_the_identity_and_unknown_orders_fail() -> None:
    s = (digits_to_string(_grid("CCC(C)C")),)
    assert in_order(s, "source") == s
    x = encode_structures(list(s))
    assert order_inputs(x, "source") is x
    with pytest.raises(ValueError, match="atom order"):
        in_order(s, "sorted")


def test_a_structure_rdkit_rejects_names_its_line() -> None:
    good = digits_to_string(_grid("CCCC"))
    grid = np.zeros((16, 16), dtype=np.int8)
    grid[0, 0:4] = 2  # carbon 0 with four double bonds: pentavalent
    with pytest.raises(DataError, match=r"data\.csv:3: field C: no canonical numbering"):
        in_order([good, digits_to_string(grid)], "canonical", source="data.csv")


def test_splits_group_a_molecule_numbered_two_ways() -> None:
    """Rows of one molecule in two numberings fall on one side of every split."""
    names = ["CCCCC(C)C", "Cc1ccccc1", "CCC", "C1CCCCC1", "CC=CC", "C#CC", "CCCCC"] * 3
    rows = [digits_to_string(_grid(s)) for s in names]
    rows.append(digits_to_string(_grid("CC(C)CCCC")))  # the first molecule, spelled otherwise
    keys = molecule_keys(rows)
    assert keys[-1] == keys[0] and rows[-1] != rows[0]
    for seed in range(10):
        sp = make_split(keys, seed=seed, val_fraction=0.3, test_fraction=0.2)
        side = {int(i): k for k, part in enumerate((sp.train, sp.val, sp.test)) for i in part}
        assert side[0] == side[len(rows) - 1]


def test_molecule_keys_are_the_structures_when_each_molecule_has_one_numbering() -> None:
    """So splits of files like the paper's are exactly the splits grouped by string."""
    rows = [digits_to_string(_grid(s)) for s in MOLECULES]
    bad = np.zeros((16, 16), dtype=np.int8)
    bad[0, 0:4] = 2
    rows.append(digits_to_string(bad))  # RDKit rejects it: only equal to itself
    assert molecule_keys(rows) == tuple(rows)
