"""Continuous structures from the inverse pass → valid carbon skeletons, and code matching.

The model's inverse pass gives X [4, 16, 16] with real values; thresholding it (the paper's
decoder) often yields carbons with five bonds or several fragments, which RDKit rejects or
which are no molecule of the data set. `decode_candidate` instead builds a skeleton that is
valid by construction:

1. Bond scores. For carbons a < b (grid cell [a, b − 1], upper triangle), the score is the
   largest of the three order channels (single/double/triple) and the aromatic channel; the
   proposed order is the arg-max of the order channels (the aromatic flag itself is left to
   RDKit's perception, as in `chem.grid_to_mol`).
2. Greedy bonds. Cells scoring above `threshold` are taken in descending score order; a bond
   is added only while both carbons keep a valence ≤ 4 (bond orders summed); when the proposed
   order does not fit, the highest order that does is used, and none if not even 1 fits.
3. Connectivity. The carbons are 0 … n − 1 with n the highest carbon any bond touches + 1;
   with `connect="join"` (default) fragments are joined by
   the best-scoring single bonds between them that valence allows (Kruskal on the scores),
   with `connect="largest"` only the largest fragment is kept and renumbered.

`code_match` compares a forward-predicted spectrum code with the query code, tolerating a
one-bin shift (a predicted shift in the neighbouring 1.6 ppm bin is nearly right).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from revstudy.data.dataset import GRID

MAX_VALENCE = 4
Connect = Literal["join", "largest"]


@dataclass(frozen=True)
class Skeleton:
    """A carbon skeleton: n carbons and bonds (a, b, order) with a < b, orders 1–3."""

    n_atoms: int
    bonds: tuple[tuple[int, int, int], ...]

    def grid(self) -> np.ndarray:
        """The 16×16 digit grid of `revstudy.data` (bond a–b at [a, b − 1])."""
        g = np.zeros((GRID, GRID), dtype=np.int8)
        for a, b, order in self.bonds:
            g[a, b - 1] = order
        return g

    def valences(self) -> np.ndarray:
        v = np.zeros(max(self.n_atoms, 1), dtype=int)
        for a, b, order in self.bonds:
            v[a] += order
            v[b] += order
        return v

    def is_connected(self) -> bool:
        return len(_components(self.n_atoms, self.bonds)) <= 1


def bond_scores(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(score [17, 17], proposed order [17, 17]) per carbon pair a < b from X [4, 16, 16]."""
    x = np.asarray(x, dtype=float)
    if x.shape != (4, GRID, GRID):
        raise ValueError(f"expected X of shape [4, 16, 16], got {list(x.shape)}")
    n = GRID + 1
    score = np.full((n, n), -np.inf)
    order = np.zeros((n, n), dtype=int)
    rows, cols = np.triu_indices(GRID)
    cell = x[:, rows, cols]  # [4, 136]
    score[rows, cols + 1] = cell.max(axis=0)
    order[rows, cols + 1] = cell[:3].argmax(axis=0) + 1
    return score, order


def decode_candidate(x: np.ndarray, threshold: float = 0.5, connect: Connect = "join") -> Skeleton:
    """A valence-valid, connected skeleton from continuous X (see the module docstring)."""
    score, proposed = bond_scores(x)
    a_idx, b_idx = np.nonzero(score > threshold)
    picked = sorted(zip(a_idx, b_idx, strict=True), key=lambda ab: -score[ab])
    valence = np.zeros(GRID + 1, dtype=int)
    bonds: dict[tuple[int, int], int] = {}
    for a, b in picked:
        room = MAX_VALENCE - max(valence[a], valence[b])
        order = min(int(proposed[a, b]), room)
        if order >= 1:
            bonds[(int(a), int(b))] = order
            valence[a] += order
            valence[b] += order
    if not bonds:
        return Skeleton(1, ())
    n = max(b for _, b in bonds) + 1
    if connect == "largest":
        return _largest(n, bonds)
    return _join(n, bonds, score, valence)


def _components(n: int, bonds: Iterable[tuple[int, ...]]) -> list[set[int]]:
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b, *_ in bonds:
        parent[find(a)] = find(b)
    groups: dict[int, set[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), set()).add(i)
    return list(groups.values())


def _join(
    n: int, bonds: dict[tuple[int, int], int], score: np.ndarray, valence: np.ndarray
) -> Skeleton:
    """Join fragments by the best-scoring single bonds valence allows (Kruskal)."""
    comp = {i: k for k, group in enumerate(_components(n, list(bonds))) for i in group}
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n) if comp[a] != comp[b]]
    pairs.sort(key=lambda ab: -score[ab] if np.isfinite(score[ab]) else np.inf)
    for a, b in pairs:
        ca, cb = comp[a], comp[b]
        if ca == cb or valence[a] >= MAX_VALENCE or valence[b] >= MAX_VALENCE:
            continue
        bonds[(a, b)] = 1
        valence[a] += 1
        valence[b] += 1
        for i, c in comp.items():
            if c == cb:
                comp[i] = ca
    return Skeleton(n, tuple((a, b, o) for (a, b), o in sorted(bonds.items())))


def _largest(n: int, bonds: dict[tuple[int, int], int]) -> Skeleton:
    """Keep the largest fragment (most carbons, then most bonds), renumbered 0 … m − 1."""
    groups = _components(n, list(bonds))
    best = max(groups, key=lambda g: (len(g), sum(a in g for a, _ in bonds)))
    new = {old: i for i, old in enumerate(sorted(best))}
    kept = sorted((new[a], new[b], o) for (a, b), o in bonds.items() if a in best)
    return Skeleton(len(best), tuple(kept))
