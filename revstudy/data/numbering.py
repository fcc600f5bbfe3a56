"""Carbon numberings: one canonical numbering per molecule, and random renumberings.

The grid's rows and columns follow whatever numbering a molecule arrives in, and a network
can learn the data file's numbering habits instead of chemistry (issue #21: the paper
configuration scores chance level on the same molecules renumbered). Two remedies live here,
each used by training, evaluation and inference alike:

- `atom_order: canonical` gives every molecule one numbering, whatever its input numbering,
  Kekulé form or SMILES spelling: the order in which RDKit's canonical SMILES writes the
  carbons, with Kekulé orders from RDKit's kekulisation of that SMILES. A SMILES is a
  depth-first walk, so bonded carbons are mostly neighbours in the numbering and bonds sit
  close to the grid's diagonal (mean |i − j| 1.8 against 3.5 in the data file), where the
  first stage's convolutions see them together; measured against RDKit's canonical atom
  ranks in `benchmarks/atom_order.py`.
- `relabel` renumbers each molecule at random (`relabel`, vectorised on any torch device),
  so a network learns that numbering is arbitrary; `relabelled` gives the fixed-seed
  renumbering every trial is also scored on.

A permutation `perm` [N, 17] lists, for each new position i, the old carbon `perm[:, i]`;
only a molecule's own carbons move (positions ≥ its carbon count stay fixed), so no gap
appears and the grid stays a valid encoding of the same molecule.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from revstudy.data.dataset import (
    GRID,
    channels_to_grid,
    digits_to_string,
    encode_structures,
    structure_digits,
)
from revstudy.errors import DataError

if TYPE_CHECKING:
    import torch

__all__ = [
    "ATOM_ORDERS",
    "RELABEL_SEED",
    "AtomOrder",
    "canonical_structure",
    "carbon_counts",
    "in_order",
    "molecule_keys",
    "order_inputs",
    "random_permutations",
    "relabel",
    "relabelled",
    "renumber",
]

AtomOrder = Literal["source", "canonical"]  # TrialConfig.atom_order
ATOM_ORDERS: tuple[str, ...] = typing.get_args(AtomOrder)
CARBONS = GRID + 1  # 17 positions: grid cell (i, k), k ≥ i, is the bond i – (k + 1)
RELABEL_SEED = 20261204  # the fixed renumbering every trial's invariance is measured with
_CACHE_SIZE = 1 << 18


# -- canonical numbering (RDKit) ------------------------------------------------------------
@functools.lru_cache(maxsize=_CACHE_SIZE)
def canonical_structure(structure: str) -> str:
    """The 136-digit structure of the same molecule in its canonical numbering.

    Built from RDKit's canonical SMILES (aromatic form, so both Kekulé forms of a ring
    agree), re-read: carbons are numbered in the order the SMILES writes them, and aromatic
    bonds take the Kekulé orders RDKit assigns to that SMILES. Raises `DataError` when RDKit
    rejects the structure."""
    from revstudy.data.chem import grid_to_smiles, require_rdkit, smiles_to_grid

    require_rdkit("the canonical atom order")
    from rdkit import rdBase

    with rdBase.BlockLogs():
        try:
            # a data file's structure may be in pieces: numbered canonically all the same
            smiles = grid_to_smiles(structure_digits(structure), fragments=True)
            return digits_to_string(smiles_to_grid(smiles, fragments=True))
        except (DataError, ValueError) as e:
            raise DataError(f"no canonical numbering: {e}") from None


def in_order(
    structures: Sequence[str], order: str, source: str = "structures", first_line: int = 2
) -> tuple[str, ...]:
    """`structures` (136-digit strings) in atom order `order`; a structure RDKit rejects is a
    `DataError` naming `source` and its line (`first_line` is the first structure's)."""
    _check_order(order)
    if order == "source":
        return tuple(structures)
    out = []
    for i, s in enumerate(structures):
        try:
            out.append(canonical_structure(s))
        except DataError as e:
            raise DataError(f"{source}:{first_line + i}: field C: {e}") from None
    return tuple(out)


def order_inputs(x: np.ndarray, order: str) -> np.ndarray:
    """Model inputs [N, 4, 16, 16] (0/1) in atom order `order`: what a network trained with
    that order must see, whatever numbering `x` arrived in."""
    _check_order(order)
    if order == "source" or len(x) == 0:
        return x
    grids = channels_to_grid(np.asarray(x))
    return encode_structures([canonical_structure(digits_to_string(g)) for g in grids])


@functools.lru_cache(maxsize=8)
def _keys(structures: tuple[str, ...]) -> tuple[str, ...]:
    first: dict[str, str] = {}
    out = []
    for s in structures:
        try:
            key = canonical_structure(s)
        except DataError:
            key = "raw:" + s  # RDKit rejects it: it is only equal to itself
        out.append(first.setdefault(key, s))
    return tuple(out)


def molecule_keys(structures: Sequence[str]) -> tuple[str, ...]:
    """Each row's structure replaced by the first structure (in file order) of the same
    molecule, so that splits group a molecule's rows whatever numbering each row uses.

    Where no molecule appears in two numberings the keys are the structures themselves, and
    splits are exactly those grouped by structure string."""
    return _keys(tuple(structures))


def _check_order(order: str) -> None:
    if order not in ATOM_ORDERS:
        raise ValueError(f"atom order must be one of {', '.join(ATOM_ORDERS)}, got {order!r}")


# -- renumbering (torch, vectorised) --------------------------------------------------------
def _pairs(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid cells (i, k), k ≥ i, and the carbons they join: i and k + 1."""
    import torch

    rows, cols = torch.triu_indices(GRID, GRID, device=device)
    return rows, cols


def carbon_counts(x: torch.Tensor) -> torch.Tensor:
    """Carbons of each structure [N, C, 16, 16] (or digit grids [N, 16, 16]): the highest
    carbon any bond touches + 1, at least 1 (a bond-free grid is methane)."""
    import torch

    occupied = (x != 0).reshape(len(x), -1, GRID, GRID).any(dim=1)  # [N, 16, 16]
    rows, cols = _pairs(x.device)
    hit = occupied[:, rows, cols]  # [N, 136]
    top = torch.where(hit, cols + 1, torch.zeros_like(cols)).amax(dim=1)
    return top + 1


def random_permutations(counts: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """[N, 17] permutations shuffling each molecule's first `counts[n]` carbons at random
    (one `torch.rand` draw from `generator` on its device) and fixing the rest."""
    import torch

    keys = torch.rand(
        (len(counts), CARBONS), generator=generator, device=generator.device, dtype=torch.float32
    ).to(counts.device)
    position = torch.arange(CARBONS, device=counts.device)
    fixed = position[None, :] >= counts[:, None]
    keys = torch.where(fixed, position.to(keys.dtype) + 2.0, keys)  # after every free key
    return torch.argsort(keys, dim=1)


def renumber(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Structures [N, C, 16, 16] (or digit grids [N, 16, 16]) with carbon `perm[n, i]` moved
    to position i: the bond between old carbons a and b ends up between their new positions,
    written at (min, max − 1) as the grid requires."""
    import torch

    squeeze = x.dim() == 3
    grids = x[:, None] if squeeze else x
    n, c = grids.shape[:2]
    rows, cols = _pairs(x.device)
    adj = torch.zeros((n, c, CARBONS, CARBONS), dtype=x.dtype, device=x.device)
    adj[:, :, rows, cols + 1] = grids[:, :, rows, cols]
    adj = adj + adj.transpose(2, 3)  # symmetric: a bond reads the same from both ends
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    moved = adj[batch, channel, perm[:, None, :, None], perm[:, None, None, :]]
    out = torch.zeros_like(grids)
    out[:, :, rows, cols] = moved[:, :, rows, cols + 1]
    return out[:, 0] if squeeze else out


def relabel(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each structure of `x` renumbered at random (its own carbons only), drawn from
    `generator`: the `relabel` augmentation, on whatever device `x` lives."""
    return renumber(x, random_permutations(carbon_counts(x), generator))


def relabelled(x: np.ndarray, seed: int = RELABEL_SEED) -> np.ndarray:
    """A fixed-seed random renumbering of structures [N, 4, 16, 16] (numpy, CPU): the
    renumbered copy every trial's invariance is measured on."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return relabel(torch.from_numpy(np.ascontiguousarray(x)), gen).numpy()
