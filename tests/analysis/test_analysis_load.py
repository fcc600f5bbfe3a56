"""Loading study directories and exporting their tables."""

from __future__ import annotations

import json
import re
from html import escape as html_escape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analysis_synthetic import cut_journal_short, journal_study

import analysis


def test_load_single(study_dir) -> None:
    s = analysis.load_study(study_dir("single"))
    assert s.name == "synthetic-single"
    assert [o.metric for o in s.objectives] == ["f1_macro"]
    assert not s.partial
    assert s.optuna_file is not None and s.optuna_file.name == "optuna.db"  # an older study
    assert s.state_counts.to_dict() == {"COMPLETED": 11, "STOPPED_EARLY": 2, "FAILED": 1}
    assert s.trials["is_baseline"].sum() == 1
    arr = s.arrays("t000")
    assert arr is not None and arr["cd_radii"].shape == (6,)
    assert s.arrays("t005") is None  # the failed trial wrote no arrays
    assert set(s.epochs["repeat"]) == {0, 1, 2}
    assert len(s.load_optuna().trials) == 14


def test_partial_when_running(study_dir) -> None:
    assert analysis.load_study(study_dir("running")).partial


def test_minimal_without_epochs_and_arrays(study_dir) -> None:
    s = analysis.load_study(study_dir("minimal"))
    assert s.epochs.empty and "val_f1_macro" in s.epochs.columns
    assert s.arrays("t001") is None


def _truncate(f: Path) -> None:
    f.write_bytes(f.read_bytes()[:1000])


def _flip_bytes(f: Path) -> None:  # a member's bytes: Bad CRC-32
    b = bytearray(f.read_bytes())
    b[200:250] = bytes(x ^ 0xFF for x in b[200:250])
    f.write_bytes(bytes(b))


def _link_outside(f: Path) -> None:
    outside = f.parents[3] / "outside.npz"
    f.rename(outside)
    f.symlink_to(outside)


def _bomb(f: Path) -> None:  # 2 GiB of zeros declared, a few MB on disk
    import zipfile

    f.unlink()
    with (
        zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z,
        z.open("x.npy", "w", force_zip64=True) as m,
    ):
        chunk = bytes(2**24)
        for _ in range(128):
            m.write(chunk)


@pytest.mark.parametrize("damage", [_truncate, _flip_bytes, _link_outside, _bomb])
def test_damaged_arrays_are_named_and_the_next_best_trial_is_drawn(tmp_path: Path, damage) -> None:
    from analysis_synthetic import make_study

    folder = make_study(tmp_path, "single")
    s = analysis.load_study(folder)
    best, second = analysis.best_trials(s, k=2)["trial_id"]
    damage(folder / "trials" / best / "arrays.npz")
    s = analysis.load_study(folder)
    name = f"trials/{best}/arrays.npz"
    with pytest.warns(analysis.DamagedFile, match=f"{name}: left out"):
        assert s.arrays(best) is None
    assert list(s.damaged) == [name]
    assert s.arrays(second) is not None and list(s.damaged) == [name]
    with pytest.warns(analysis.DamagedFile, match=f"{name}: left out"):
        html = analysis.write_report(folder, tmp_path / "r.html").read_text()
    assert html_escape(f"Damaged files: {name}: {s.damaged[name]}") in html
    assert str(folder) not in s.damaged[name]  # the banner names the file once
    assert 'class="reason"' not in html  # every section drawn, from the next best trial
    assert f"Real vs generated structures, trial {second}" in html


def test_an_optuna_record_cut_short_is_named_with_the_trials_it_lost(tmp_path: Path) -> None:
    folder = journal_study(tmp_path)
    cut_journal_short(folder / "optuna.journal")
    s = analysis.load_study(folder)
    with pytest.warns(analysis.DamagedFile, match="optuna.journal: holds no record of"):
        ostudy = s.load_optuna()
    kept = {t.number for t in ostudy.trials}
    lost = sorted(set(s.trials["number"].dropna()) - kept)
    assert lost and min(lost) > max(kept)
    first = s.trials.loc[s.trials["number"] == lost[0], "trial_id"].iloc[0]
    assert s.damaged["optuna.journal"].startswith(
        f"holds no record of {len(lost)} trial folder(s) "
        f"(e.g. trials/{first}, Optuna trial {lost[0]}): cut short or replaced"
    )
    with pytest.warns(analysis.DamagedFile):
        html = analysis.write_report(folder, tmp_path / "r.html").read_text()
    assert "Damaged files: optuna.journal: holds no record of" in html
    assert '<section id="history">' in html


@pytest.mark.parametrize("content", [b"", b"garbage"])  # no whole line: Optuna reads nothing
def test_a_journal_without_the_study_is_named_not_a_key_error(
    tmp_path: Path, content: bytes
) -> None:
    folder = journal_study(tmp_path)
    (folder / "optuna.journal").write_bytes(content)
    s = analysis.load_study(folder)
    named = re.escape(f"{folder / 'optuna.journal'}: holds no study 'synthetic-single'")
    with pytest.raises(ValueError, match=f"^{named}"):
        s.load_optuna()
    html = analysis.write_report(folder, tmp_path / "r.html").read_text()
    assert "KeyError" not in html and "holds no study" in html


def test_a_damaged_epochs_table_is_rebuilt_from_the_trial_folders(tmp_path: Path) -> None:
    from analysis_synthetic import make_study

    folder = make_study(tmp_path, "single")
    rows = [{"repeat": 0, "epoch": e, "val_f1_macro": 0.1 * e, "train_loss": 1.0} for e in (1, 2)]
    (folder / "trials" / "t001" / "epochs.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )
    (folder / "epochs.parquet").write_bytes(b"PAR1 torn")
    with pytest.warns(UserWarning, match="epochs.parquet: damaged .*rebuilt from the trial"):
        s = analysis.load_study(folder)
    assert s.epochs[["trial_id", "epoch"]].values.tolist() == [["t001", 1], ["t001", 2]]
    assert s.epochs["val_f1_macro"].tolist() == [0.1, 0.2]


def test_not_a_study(tmp_path: Path) -> None:
    with pytest.raises(analysis.NotAStudyError, match=str(tmp_path)):
        analysis.load_study(tmp_path)
    missing = tmp_path / "nope"
    with pytest.raises(analysis.NotAStudyError, match="nope"):
        analysis.load_study(missing)


def test_empty_study(tmp_path: Path) -> None:
    (tmp_path / "study.json").write_text(json.dumps({"name": "empty"}))
    s = analysis.load_study(tmp_path)
    assert s.trials.empty and not s.partial and s.optuna_file is None
    assert analysis.best_trials(s).empty
    out = analysis.write_report(tmp_path)
    assert "no trials yet" in out.read_text()


def test_best_trials_single(study_dir) -> None:
    s = analysis.load_study(study_dir("single"))
    best = analysis.best_trials(s, k=3)
    f1 = s.finished["f1_macro"].sort_values(ascending=False)
    assert list(best["f1_macro"]) == list(f1.head(3))


def test_best_trials_multi_pareto_first(study_dir) -> None:
    s = analysis.load_study(study_dir("multi"))
    best = analysis.best_trials(s, k=20)
    flags = best["pareto"].tolist()
    assert flags[0] and flags == sorted(flags, reverse=True)


def test_pareto_mask() -> None:
    v = np.array([[1.0, 1.0], [2.0, 0.0], [0.5, 0.5], [0.0, 2.0]])
    assert analysis.pareto_mask(v).tolist() == [True, True, False, True]


def test_export_tables(study_dir, tmp_path: Path) -> None:
    path = study_dir("single")
    assert analysis.cli_report(path, csv=tmp_path / "t.csv", parquet=tmp_path / "t.pq") is None
    csv = pd.read_csv(tmp_path / "t.csv")
    assert csv["trial_id"].tolist()[:2] == ["t000", "t001"] and len(csv) == 14
    assert len(pd.read_parquet(tmp_path / "t.pq")) == 14
    ep = analysis.export_table(path, tmp_path / "e.parquet", epochs=True)
    assert {"trial_id", "repeat", "epoch"} <= set(pd.read_parquet(ep).columns)
