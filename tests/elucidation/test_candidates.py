"""The candidate decoder's valence and connectivity rules on hand-made score matrices."""

from __future__ import annotations

import numpy as np
import pytest

from revstudy.data.codes import code_match, code_match_many
from revstudy.elucidation.candidates import MAX_VALENCE, Skeleton, decode_candidate


def _x(bonds: dict[tuple[int, int], tuple[int, float]]) -> np.ndarray:
    """X [4, 16, 16] with score `s` on order channel `order − 1` for carbons a < b."""
    x = np.full((4, 16, 16), -1.0)
    for (a, b), (order, s) in bonds.items():
        x[order - 1, a, b - 1] = s
    return x


def test_chain_decodes_as_given() -> None:
    sk = decode_candidate(_x({(0, 1): (1, 0.9), (1, 2): (2, 0.8)}))
    assert sk == Skeleton(3, ((0, 1, 1), (1, 2, 2)))
    assert sk.grid()[1, 1] == 2


def test_valence_caps_at_four_and_lowers_orders() -> None:
    # carbon 0 is offered five single bonds (scores descending) and then a double bond
    bonds = {(0, b): (1, 1.0 - 0.01 * b) for b in range(1, 6)}
    bonds[(1, 2)] = (3, 0.5001)  # a triple bond that no longer fits carbon 1 (valence 1)
    sk = decode_candidate(_x(bonds))
    assert sk.valences().max() <= MAX_VALENCE
    assert sk.valences()[0] == 4
    assert (1, 2, 3) in sk.bonds or all((a, b) != (1, 2) for a, b, _ in sk.bonds)
    assert sk.is_connected()


def test_order_lowered_when_full_order_does_not_fit() -> None:
    # carbon 1 already has a triple bond; a proposed double bond to carbon 2 becomes single
    sk = decode_candidate(_x({(0, 1): (3, 0.9), (1, 2): (2, 0.8)}))
    assert sk.bonds == ((0, 1, 3), (1, 2, 1))


def test_fragments_are_joined_by_best_single_bonds() -> None:
    x = _x({(0, 1): (1, 0.9), (2, 3): (1, 0.9)})
    x[0, 1, 1] = 0.3  # carbons 1–2: the best below-threshold link between the fragments
    sk = decode_candidate(x)
    assert sk.is_connected()
    assert (1, 2, 1) in sk.bonds
    assert len(sk.bonds) == 3


def test_largest_fragment_kept_and_renumbered() -> None:
    x = _x({(0, 1): (1, 0.9), (3, 4): (1, 0.9), (4, 5): (2, 0.9)})
    sk = decode_candidate(x, connect="largest")
    assert sk == Skeleton(3, ((0, 1, 1), (1, 2, 2)))


def test_nothing_above_threshold_is_methane() -> None:
    assert decode_candidate(np.zeros((4, 16, 16))) == Skeleton(1, ())


def test_bad_shape_raises() -> None:
    with pytest.raises(ValueError, match="4, 16, 16"):
        decode_candidate(np.zeros((16, 16)))


def test_decoded_random_scores_are_always_valid() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        sk = decode_candidate(rng.normal(0.3, 0.5, size=(4, 16, 16)))
        assert sk.valences().max() <= MAX_VALENCE
        assert all(1 <= o <= 3 and a < b for a, b, o in sk.bonds)


def test_code_match_tolerates_neighbouring_bins() -> None:
    q = np.zeros(128)
    q[[10, 50]] = 1
    p = np.zeros(128)
    p[[11, 50]] = 1
    assert code_match(q, q) == 1.0
    assert code_match(p, q) == 1.0
    assert code_match(p, q, tolerance=0) == pytest.approx(0.5)
    assert code_match(np.zeros(128), q) == 0.0


def test_code_match_many_equals_code_match() -> None:
    rng = np.random.default_rng(1)
    codes = (rng.random((40, 128)) < 0.05).astype(float)
    codes[0] = 0
    query = (rng.random(128) < 0.05).astype(float)
    for tol in (0, 1, 2):
        expected = [code_match(c, query, tol) for c in codes]
        assert code_match_many(codes, query, tol) == pytest.approx(expected)


def test_strained_candidates_are_recognised() -> None:
    pytest.importorskip("rdkit.Chem")
    from revstudy.elucidation.elucidate import strained

    assert strained("C1#CCCC1")  # cyclopentyne
    assert strained("C1=C=CCC1")  # a 5-ring allene
    assert not strained("C1#CCCCCCCC1")  # cyclononyne exists
    assert not strained("C=C=C")  # allene
    assert not strained("c1ccccc1C#C")  # triple bond outside the ring
