"""`revstudy.elucidation.elucidate`: query spectra read, codes and their ppm ranges,
candidates de-duplicated and ranked, the retrieval library, and generation with an
untrained tiny network (no training: every test here is fast)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from revstudy.data.dataset import channels_to_grid, digits_to_string
from revstudy.errors import DataError, RevstudyError
from revstudy.training.config import TrialConfig
from revstudy.training.metrics import Prior
from revstudy.training.model import InvertibleNet
from revstudy.training.saved import SavedModel
from tests.conftest import write_csv

Chem = pytest.importorskip("rdkit.Chem")

from revstudy.data.chem import grid_to_smiles, smiles_to_grid  # noqa: E402 - after the skip
from revstudy.elucidation.elucidate import (  # noqa: E402
    MAX_SAMPLES,
    Library,
    canonical,
    code_of,
    decode_all,
    elucidate,
    elucidation_document,
    generate,
    parse_query_spectrum,
    rank_grids,
    set_bins,
)

TINY = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=1, cd_draws=1)


def _set(bits: np.ndarray) -> list[int]:
    return np.flatnonzero(bits).tolist()


# -- query spectra -------------------------------------------------------------------------
def test_ppm_values_land_in_their_0_2_ppm_bins() -> None:
    """⌊ppm · 5⌋: 14.1 → 70, 31.9 → 159, 40.1 → 200, 0 → 0; 204.8 (the top) → 1023."""
    bits = parse_query_spectrum("14.1, 31.9;40.1\n0 204.8")
    assert bits.shape == (1024,) and _set(bits) == [0, 70, 159, 200, 1023]
    assert _set(parse_query_spectrum("14.1,14.15")) == [70]  # one bin, one bit


def test_the_data_files_bit_string_is_read_as_bits() -> None:
    bits = ["0"] * 1024
    bits[3] = bits[999] = "1"
    text = "".join(bits)
    assert _set(parse_query_spectrum(text)) == [3, 999]
    spaced = " ".join(text[i : i + 64] for i in range(0, 1024, 64)) + "\n"
    assert _set(parse_query_spectrum(spaced)) == [3, 999]


def test_a_file_of_either(tmp_path: Path) -> None:
    peaks = tmp_path / "peaks.txt"
    peaks.write_text("14.1\n31.9\n")
    assert _set(parse_query_spectrum(str(peaks))) == [70, 159]
    bits = tmp_path / "bits.txt"
    bits.write_text("1" + "0" * 1023 + "\n")
    assert _set(parse_query_spectrum(str(bits))) == [0]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("12,abc", "spectrum: 'abc' is not a ppm value"),
        ("204.9", "spectrum: shift 204.9 ppm is outside 0–204.8 ppm"),
        ("-0.1", "shift -0.1 ppm is outside"),
        ("nan", "shift nan ppm is outside"),
        ("inf", "shift inf ppm is outside"),
        ("", "spectrum: no peaks given"),
        (" , ; ", "spectrum: no peaks given"),
        ("0" * 1024, "spectrum: no peaks given (a bit string of 1024 zeros)"),
        ("1" * 1023 + "x", "is not a ppm value"),  # 1024 characters, but not bits
    ],
)
def test_bad_spectra_are_one_short_line(text: str, needle: str) -> None:
    with pytest.raises(DataError) as e:
        parse_query_spectrum(text)
    assert needle in str(e.value) and "\n" not in str(e.value) and len(str(e.value)) < 120


def test_an_error_in_a_file_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "peaks.txt"
    f.write_text("10\n300\n")
    with pytest.raises(DataError, match=f"^{f}: shift 300 ppm is outside"):
        parse_query_spectrum(str(f))


# -- codes ----------------------------------------------------------------------------------
def test_code_of_ors_eight_fine_bins_into_a_128_bit_code() -> None:
    bits = np.zeros(1024, dtype=np.float32)
    bits[[70, 71, 159]] = 1
    assert _set(code_of(bits, 128)) == [8, 19]  # 70 // 8, 159 // 8
    assert _set(code_of(bits, 32)) == [2, 4]  # 32 fine bins a bit
    assert _set(code_of(bits, 1024)) == [70, 71, 159]


def test_set_bins_gives_each_set_bits_ppm_range() -> None:
    code = np.zeros(128)
    code[[8, 19]] = 1  # 1.6 ppm a bit at 128 bits
    assert set_bins(code) == [
        {"bin": 8, "ppm_low": 12.8, "ppm_high": 14.4},
        {"bin": 19, "ppm_low": 30.4, "ppm_high": 32.0},
    ]
    assert set_bins(np.zeros(64)) == []
    assert set_bins(np.eye(32)[31]) == [{"bin": 31, "ppm_low": 198.4, "ppm_high": 204.8}]


# -- candidates -------------------------------------------------------------------------------
def _grid(bonds: dict[tuple[int, int], int]) -> np.ndarray:
    g = np.zeros((16, 16), dtype=np.int8)
    for (a, b), d in bonds.items():
        g[a, b - 1] = d
    return g


KEKULE_BENZENE = {(0, 1): 2, (1, 2): 1, (2, 3): 2, (3, 4): 1, (4, 5): 2, (0, 5): 1}


def test_canonical_gives_smiles_and_the_input_with_rdkits_aromatic_flags() -> None:
    smiles, x = canonical(_grid(KEKULE_BENZENE))  # type: ignore[misc]
    assert smiles == "c1ccccc1" and x.shape == (4, 16, 16)
    ring = [(a, b - 1) for a, b in KEKULE_BENZENE]
    assert {(int(i), int(k)) for i, k in zip(*np.nonzero(x[3]), strict=True)} == set(ring)
    assert x[0].sum() == 3 and x[1].sum() == 3 and x[2].sum() == 0  # Kekulé orders kept
    smiles, x = canonical(np.zeros((16, 16), dtype=np.int8))  # type: ignore[misc]
    assert smiles == "C" and x.sum() == 0  # the zero grid is methane


@pytest.mark.parametrize(
    "bonds",
    [
        {(0, 1): 3, (0, 2): 3},  # pentavalent carbon
        {(0, 1): 1, (2, 3): 1},  # two ethanes: no single molecule
    ],
)
def test_canonical_refuses_what_is_no_single_molecule(bonds: dict[tuple[int, int], int]) -> None:
    assert canonical(_grid(bonds)) is None


def test_decode_all_thresholds_each_structure() -> None:
    saved = SimpleNamespace(config=SimpleNamespace(decoder_threshold=0.5))
    x = np.full((2, 4, 16, 16), -1.0)
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = 0.9  # propane: single bonds 0-1 and 1-2
    x[1, 1, 0, 0] = 0.8  # ethene: a double bond 0-1
    x[1, 0, 1, 1] = 0.4  # below the threshold: no bond
    propane, ethene = decode_all(saved, x)  # type: ignore[arg-type]
    assert grid_to_smiles(propane) == "CCC" and grid_to_smiles(ethene) == "C=C"


class _ByName:
    """A stand-in SavedModel whose forward prediction is a code chosen per molecule."""

    def __init__(self, codes: dict[str, list[int]], y_dim: int = 128) -> None:
        self.codes, self.y_dim = codes, y_dim
        self.seen: list[str] = []

    def predict_codes(self, x: torch.Tensor, average: int = 1) -> np.ndarray:
        out = np.zeros((len(x), self.y_dim), dtype=np.uint8)
        for i, g in enumerate(channels_to_grid(x.numpy())):
            name = grid_to_smiles(g)
            self.seen.append(name)
            out[i, self.codes[name]] = 1
        return out


def _query(*bits: int) -> np.ndarray:
    q = np.zeros(128, dtype=np.float32)
    q[list(bits)] = 1
    return q


def test_rank_grids_dedupes_by_molecule_and_ranks_by_match() -> None:
    """Propane twice (two numberings), heptane, a strained cyclopropyne that matches as well
    as propane, and a pentavalent grid (skipped): propane first (score 1, 2 samples), then
    heptane (score 0), the strained candidate last whatever its score."""
    cyclopropyne = Chem.CanonSmiles("C1#CC1")
    stub = _ByName({"CCC": [20, 40], "CCCCCCC": [90], cyclopropyne: [20, 40]})
    grids = [
        smiles_to_grid("CCC"),
        smiles_to_grid("C(C)C"),  # propane numbered from the middle
        smiles_to_grid("CCCCCCC"),
        smiles_to_grid("C1#CC1"),
        _grid({(0, 1): 3, (0, 2): 3}),
    ]
    assert not np.array_equal(grids[0], grids[1])
    ranked = rank_grids(stub, grids, _query(20, 40))  # type: ignore[arg-type]
    assert [(s, sc, n) for s, sc, n, _ in ranked] == [
        ("CCC", 1.0, 2),
        ("CCCCCCC", 0.0, 1),
        (cyclopropyne, 1.0, 1),
    ]
    assert _set(ranked[0][3]) == [20, 40]  # each candidate's predicted code
    assert sorted(stub.seen) == sorted(["CCC", "CCCCCCC", cyclopropyne])  # one forward each


def test_rank_grids_breaks_ties_by_samples_then_smiles() -> None:
    stub = _ByName({"CCCC": [10], "CC=CC": [10], "C=CCC": [10]})
    grids = [smiles_to_grid(s) for s in ("CCC=C", "CCCC", "CC=CC", "CC=CC")]
    ranked = rank_grids(stub, grids, _query(10))  # type: ignore[arg-type]
    assert [s for s, *_ in ranked] == ["CC=CC", "C=CCC", "CCCC"]
    assert rank_grids(stub, [], _query(10)) == []  # type: ignore[arg-type]


def test_partial_matches_score_between_zero_and_one() -> None:
    """Predicted {20, 40} against query {20, 60}: precision 1/2, recall 1/2, F1 0.5; a bit
    one bin off (41 for 40) still counts."""
    stub = _ByName({"CCC": [20, 40]})
    ((_, score, _, _),) = rank_grids(stub, [smiles_to_grid("CCC")], _query(20, 60))  # type: ignore[arg-type]
    assert score == pytest.approx(0.5)
    ((_, score, _, _),) = rank_grids(stub, [smiles_to_grid("CCC")], _query(20, 41))  # type: ignore[arg-type]
    assert score == pytest.approx(1.0)


def test_the_library_holds_each_molecule_once() -> None:
    stub = _ByName({"CCC": [5], "Cc1ccccc1": [7], "C=C": [60]})
    structures = [
        digits_to_string(smiles_to_grid("CCC")),
        digits_to_string(smiles_to_grid("CCC")),  # the same row twice
        digits_to_string(smiles_to_grid("C(C)C")),  # the same molecule renumbered
        digits_to_string(smiles_to_grid("Cc1ccccc1")),
        digits_to_string(smiles_to_grid("C=C")),
        digits_to_string(_grid({(0, 1): 3, (0, 2): 3})),  # not a molecule: left out
    ]
    lib = Library.from_structures(stub, structures)  # type: ignore[arg-type]
    assert lib.smiles == ["CCC", "Cc1ccccc1", "C=C"] and lib.codes.shape == (3, 128)
    assert lib.rank(_query(7)) == [("Cc1ccccc1", 1.0), ("C=C", 0.0), ("CCC", 0.0)]
    empty = Library.from_structures(stub, [])  # type: ignore[arg-type]
    assert empty.smiles == [] and empty.rank(_query(7)) == []


# -- generation with an untrained network ------------------------------------------------
@pytest.fixture(scope="module")
def untrained() -> SavedModel:
    torch.manual_seed(0)
    model = InvertibleNet.from_config(TINY).eval()
    gen = torch.Generator().manual_seed(0)
    prior = Prior(
        torch.zeros(TINY.z_dim), torch.ones(TINY.z_dim), torch.randn(2, TINY.y_dim, generator=gen)
    )
    return SavedModel(Path("untrained"), TINY, model, prior, 3, torch.full((TINY.y_dim,), 0.05))


def test_generate_is_seeded_and_shaped_per_query(untrained: SavedModel) -> None:
    codes = np.stack([_query(3), _query(70)])
    x = generate(untrained, codes, samples=3, seed=1)
    assert x.shape == (2, 3, 4, 16, 16) and np.isfinite(x).all()
    np.testing.assert_array_equal(x, generate(untrained, codes, samples=3, seed=1))
    assert not np.array_equal(x, generate(untrained, codes, samples=3, seed=2))


@pytest.mark.parametrize("samples", [0, MAX_SAMPLES + 1])
def test_elucidate_refuses_sample_counts_before_any_work(samples: int) -> None:
    with pytest.raises(RevstudyError, match=f"--samples {samples}: choose 1 to {MAX_SAMPLES}"):
        elucidate(None, np.zeros(1024), samples=samples)  # type: ignore[arg-type]


def test_elucidate_ranks_its_candidates(untrained: SavedModel) -> None:
    bits = parse_query_spectrum("14.1,22.8,31.9")
    res = elucidate(untrained, bits, samples=12, top=4, seed=0)
    assert res.samples == 12 and 0 <= res.valid <= 12
    assert len(res.candidates) <= 4
    assert sum(c.count for c in res.candidates) <= res.valid
    flags = [c.strained for c in res.candidates]
    assert flags == sorted(flags)  # strained ones last
    plain = [c.score for c in res.candidates if not c.strained]
    assert plain == sorted(plain, reverse=True)
    for c in res.candidates:
        assert Chem.CanonSmiles(c.smiles) == c.smiles and 0.0 <= c.score <= 1.0
    again = elucidate(untrained, bits, samples=12, top=4, seed=0)
    assert [(c.smiles, c.count) for c in again.candidates] == [
        (c.smiles, c.count) for c in res.candidates
    ]


def test_the_elucidation_document(untrained: SavedModel, tmp_path: Path) -> None:
    bits = parse_query_spectrum("14.1,31.9")
    rows = [
        (i, i, digits_to_string(smiles_to_grid(s)), "0" * 1024)
        for i, s in enumerate(["CCC", "CC=C"])
    ]
    csv = write_csv(tmp_path / "lib.csv", rows)
    doc = elucidation_document(untrained, bits, samples=6, top=1, seed=0, library=csv)
    assert set(doc) == {"query_bins", "samples", "valid", "candidates", "library"}
    assert doc["query_bins"] == [
        {"bin": 8, "ppm_low": 12.8, "ppm_high": 14.4},
        {"bin": 19, "ppm_low": 30.4, "ppm_high": 32.0},
    ]
    assert doc["samples"] == 6 and len(doc["candidates"]) <= 1 and len(doc["library"]) == 1
    assert doc["library"][0]["smiles"] in {"CCC", "C=CC"}
    for c in doc["candidates"]:
        assert set(c) == {"smiles", "score", "count", "strained"}
    assert "library" not in elucidation_document(untrained, bits, samples=2)
    with pytest.raises(RevstudyError, match="--top 0: must be >= 1"):
        elucidation_document(untrained, bits, top=0)
