from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from revstudy.data.dataset import (
    bin_to_ppm_range,
    coarsen,
    decode_structures,
    encode_spectra,
    encode_structures,
    make_split,
    ppm_to_bin,
    read_dataset,
    structure_digits,
)
from revstudy.errors import DataError
from tests.conftest import synthetic_rows, write_csv


def test_structure_encoding_places_bonds_and_aromatic_flag() -> None:
    grid = np.zeros((16, 16), dtype=int)
    grid[0, 0] = 1  # C0-C1 single
    grid[1, 1] = 2  # C1-C2 double
    grid[2, 5] = 3  # C2-C6 triple
    grid[3, 3] = 7  # C3-C4 aromatic, Kekulé double
    grid[4, 4] = 6  # C4-C5 aromatic, Kekulé single
    s = "".join(str(v) for v in grid[np.triu_indices(16)])
    x = encode_structures([s])[0]
    assert x.shape == (4, 16, 16) and x.dtype == np.float32
    assert x[0, 0, 0] == 1 and x[1, 1, 1] == 1 and x[2, 2, 5] == 1
    assert x[1, 3, 3] == 1 and x[3, 3, 3] == 1 and x[0, 3, 3] == 0
    assert x[0, 4, 4] == 1 and x[3, 4, 4] == 1
    assert x.sum() == 7
    assert decode_structures(x[None]) == [s]
    assert (structure_digits(s) == grid).all()


def test_encoding_round_trip_on_synthetic_rows() -> None:
    strings = [r[2] for r in synthetic_rows(40)]
    assert decode_structures(encode_structures(strings)) == strings


def test_spectra_and_coarsening() -> None:
    bits = np.zeros(1024, dtype=int)
    bits[[0, 5, 7, 1023]] = 1
    y = encode_spectra(["".join(map(str, bits))])
    assert y.shape == (1, 1024) and y.sum() == 4
    c = coarsen(y, 128)
    assert c.shape == (1, 128)
    assert list(np.flatnonzero(c[0])) == [0, 127]  # bins 0,5,7 OR into coarse 0
    assert coarsen(y, 512)[0, :4].tolist() == [1, 0, 1, 1]
    with pytest.raises(ValueError, match="divide"):
        coarsen(y, 100)


def test_ppm_bins() -> None:
    assert ppm_to_bin(-3.0) == 0
    assert ppm_to_bin(0.19) == 0 and ppm_to_bin(0.2) == 1
    assert ppm_to_bin(128.5) == 642
    assert ppm_to_bin(204.6) == 1023 and ppm_to_bin(250.0) == 1023
    assert bin_to_ppm_range(1, 128) == pytest.approx((1.6, 3.2))


def test_reads_synthetic_file(synthetic_csv: Path) -> None:
    ds = read_dataset(synthetic_csv)
    assert len(ds) == 60 and ds.x().shape == (60, 4, 16, 16) and ds.y().shape == (60, 1024)
    assert len(ds.sha256) == 64


def _bad(tmp_path: Path, rows: list, header: str = "A,B,C,D") -> str:
    path = write_csv(tmp_path / "bad.csv", rows, header)
    with pytest.raises(DataError) as e:
        read_dataset(path)
    msg = str(e.value)
    assert str(path) in msg
    return msg


def test_bad_inputs_name_file_line_and_field(tmp_path: Path) -> None:
    good = synthetic_rows(3)
    assert "header" in _bad(tmp_path, good, header="A,B,C")
    short = [*good[:1], (good[1][0], good[1][1], good[1][2][:-1], good[1][3])]
    assert ":3: field C: expected 136 digits" in _bad(tmp_path, short)
    wrong = [*good[:2], (good[2][0], good[2][1], "5" + good[2][2][1:], good[2][3])]
    assert ":4: field C: character '5' at position 1" in _bad(tmp_path, wrong)
    spec = [(good[0][0], good[0][1], good[0][2], "2" + good[0][3][1:])]
    assert ":2: field D: character '2'" in _bad(tmp_path, spec)
    dup = [good[0], good[1], good[0]]
    assert ":4: fields A,B: pair" in _bad(tmp_path, dup) and "repeats line 2" in _bad(tmp_path, dup)
    ids = [("x1", *good[0][1:])]
    assert ":2: field A" in _bad(tmp_path, ids)
    # a first row with extra fields: pandas would take them for an index column and read
    # every field one column off ("field B: … got '000…'", the structure)
    lines = ["A,B,C,D", *(",".join(map(str, row)) for row in good)]
    for extra in (1, 2):
        (tmp_path / "long.csv").write_text(
            "\n".join([lines[0], lines[1] + ",x" * extra, *lines[2:]])
        )
        with pytest.raises(DataError) as e:
            read_dataset(tmp_path / "long.csv")
        assert str(e.value) == (
            f"{tmp_path / 'long.csv'}:2: {4 + extra} fields where the header names 4 (A,B,C,D)"
        )
    (tmp_path / "late.csv").write_text("\n".join([*lines[:2], lines[2] + ",x", lines[3]]))
    with pytest.raises(DataError, match=r"late\.csv: not a readable CSV file: Error tokenizing"):
        read_dataset(tmp_path / "late.csv")  # a later row: pandas' own error, the file named
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="not found"):
        read_dataset(missing)


def test_leading_zeros_are_kept(tmp_path: Path) -> None:
    rows = synthetic_rows(2)
    path = write_csv(tmp_path / "z.csv", rows)
    ds = read_dataset(path)
    assert ds.structures[0] == rows[0][2] and ds.spectra[1] == rows[1][3]


def test_split_is_grouped_seeded_and_test_is_fixed() -> None:
    strings = [r[2] for r in synthetic_rows(200)]
    strings += strings[:20]  # repeated structures must stay on one side
    a = make_split(strings, seed=1)
    b = make_split(strings, seed=2)
    assert np.array_equal(a.test, b.test)  # test depends on test_seed only
    assert not np.array_equal(a.val, b.val)
    assert np.array_equal(make_split(strings, seed=1).val, a.val)
    for s in (a, b):
        parts = [
            set(np.asarray(strings)[s.train]),
            set(np.asarray(strings)[s.val]),
            set(np.asarray(strings)[s.test]),
        ]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert len(s.train) + len(s.val) + len(s.test) == len(strings)
    paper = make_split(strings, seed=1, test_fraction=0.0)
    assert len(paper.test) == 0 and 0.1 < len(paper.val) / len(strings) < 0.35


def test_real_file_encodes_and_round_trips(real_csv: Path) -> None:
    ds = read_dataset(real_csv)
    x = ds.x()
    assert decode_structures(x) == list(ds.structures)
    code = coarsen(ds.y(), 128)
    assert 0.05 < code.mean() < 0.08  # the paper's 6.43 % on the full file


def test_split_shares_follow_the_papers_80_20_around_the_test_split() -> None:
    """Validation is a share of what the test split leaves: 72/18/10 by default, 80/20 with
    no test split (the paper's protocol), the same in `train` and in every study trial."""
    from revstudy.data.dataset import make_split

    structures = [f"s{i:03d}" for i in range(1000)]
    sp = make_split(structures, seed=1, val_fraction=0.2, test_fraction=0.1)
    assert (len(sp.train), len(sp.val), len(sp.test)) == (720, 180, 100)
    sp = make_split(structures, seed=1, val_fraction=0.2, test_fraction=0.0)
    assert (len(sp.train), len(sp.val), len(sp.test)) == (800, 200, 0)
    other = make_split(structures, seed=2, val_fraction=0.3, test_fraction=0.1)
    first = make_split(structures, seed=1, val_fraction=0.2, test_fraction=0.1)
    assert set(other.test) == set(first.test)  # one held-out split for every trial
