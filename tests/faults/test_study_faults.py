"""Issue 11, cases 1-7 and 9: study folders, names and flags. No Ray starts in these tests:
every refusal comes before it."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

from revstudy.errors import RevstudyError
from revstudy.study.options import LaunchOptions, check_address, relaunch_changes
from revstudy.study.records import append_epochs
from revstudy.studyinfo import read_study
from revstudy.trialtable import build_trials_table, read_epochs
from tests.faults.conftest import one_line_error, plant, run, synthetic_study


# -- 1: nothing in a study folder is unpickled by status, list, report or export ------------
def test_readers_never_unpickle_a_planted_payload(tmp_path: Path) -> None:
    folder = synthetic_study(tmp_path / "st")
    marker = tmp_path / "pwned"
    for rel in ("ray/tuner.pkl", "ray/run-1/searcher-state-x.pkl", "ray/run-1/t/params.pkl"):
        plant(folder / rel, marker)
    plant(folder / "trials" / "t001" / "state.pt", marker)
    root = str(folder.parent)
    for args in (
        ["status", folder.name, "--storage", root],
        ["status", folder.name, "--storage", root, "--json"],
        ["list", "--storage", root],
        ["report", folder.name, "--storage", root, "--out", str(tmp_path / "r.html")],
        # the synthetic study's params are not TrialConfig fields: export refuses it (exit 2)
        # after reading it; tests/study exports a real study with planted payloads
        ["export", folder.name, "--storage", root, "--out", str(tmp_path / "best.yaml")],
    ):
        res = run(*args)
        assert res.exit_code == (2 if args[0] == "export" else 0), (args, res.output)
        assert not marker.exists(), f"{args[0]} unpickled a planted payload"


# -- 2: names never escape the storage root -------------------------------------------------
@pytest.mark.parametrize("name", ["../x", "/tmp/evil", "..", ".", ".hidden", "a/b", "-x", "a b"])
def test_launch_refuses_names_that_are_not_plain(tmp_path: Path, csv: Path, name: str) -> None:
    storage = tmp_path / "deep" / "st"
    res = run("launch", "--name", name, "--data", str(csv), "--storage", str(storage))
    one_line_error(res, "--name", "letters, digits")
    assert not storage.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["syn.csv"]


@pytest.mark.parametrize("command", ["status", "resume", "report", "export"])
def test_other_commands_refuse_escaping_names(tmp_path: Path, command: str) -> None:
    res = run(command, "../../etc", "--storage", str(tmp_path / "st"))
    one_line_error(res, "study '../../etc'")


# -- 3: a torn last line in epochs.jsonl --------------------------------------------------
def test_torn_epoch_line_is_skipped_with_a_warning_and_repaired(tmp_path: Path) -> None:
    append_epochs(tmp_path, "t1", [{"repeat": 0, "epoch": 1, "val_loss": 1.0}])
    path = tmp_path / "trials" / "t1" / "epochs.jsonl"
    with path.open("a") as f:
        f.write('{"repeat": 0, "epoch": 2, "val_lo')  # what a SIGKILL mid-append leaves
    with pytest.warns(UserWarning, match=r"epochs\.jsonl:2: skipped a damaged line"):
        df = read_epochs(tmp_path)
    assert df["epoch"].tolist() == [1]
    with pytest.warns(UserWarning, match="cut a torn last line"):
        append_epochs(tmp_path, "t1", [{"repeat": 0, "epoch": 2, "val_loss": 0.5}])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired: no warning any more
        assert read_epochs(tmp_path)["epoch"].tolist() == [1, 2]
    assert path.read_text().endswith("}\n")


# -- 4: a damaged result.json is reported, not demoted --------------------------------------
def test_damaged_result_is_flagged_and_not_ranked(tmp_path: Path) -> None:
    folder = synthetic_study(tmp_path / "st")
    before = json.loads(run("status", str(folder), "--json").stdout)
    tid = before["best"]["trial_id"]
    (folder / "trials" / tid).mkdir(parents=True, exist_ok=True)
    (folder / "trials" / tid / "result.json").write_text('{"trial_id": "t0')  # torn
    (folder / "trials.parquet").unlink()  # the table is rebuilt from the trial folders
    table = build_trials_table(folder, {})
    row = table[table.trial_id == tid].iloc[0]
    assert row.state == "DAMAGED" and "result.json: damaged" in row.failure_reason
    res = run("status", str(folder))
    assert res.exit_code == 0
    assert f"trial {tid}" in res.stderr and "DAMAGED" in res.stderr
    assert "resume does not re-run it" in res.stderr


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"number": 3, "is_baseline": tr', "trial.json: damaged (not a JSON object)"),
        ('{"number": "3"}', "trial.json: number is '3', not an integer"),
        ('{"number": 3, "is_baseline": "no"}', "trial.json: is_baseline is 'no', not true or"),
    ],
)
def test_a_damaged_trial_file_is_flagged_and_not_ranked(
    tmp_path: Path, content: str, why: str
) -> None:
    """A trial.json that cannot be trusted would lose the trial's number and baseline flag
    (the paper baseline ranked as a winner): DAMAGED, as a damaged result.json is."""
    folder = synthetic_study(tmp_path / "st")
    tdir = folder / "trials" / "tx"
    tdir.mkdir(parents=True)
    result = {"config": {"epochs": 1}, "metrics": {"f1_macro": 0.9, "epoch": 1}, "report": {}}
    (tdir / "result.json").write_text(json.dumps(result))
    (tdir / "trial.json").write_text('{"number": 3, "is_baseline": true}')
    row = build_trials_table(folder, {}).set_index("trial_id").loc["tx"]
    assert row.state == "COMPLETED" and row.is_baseline  # intact: as recorded
    (tdir / "trial.json").write_text(content)
    row = build_trials_table(folder, {}).set_index("trial_id").loc["tx"]
    assert row.state == "DAMAGED" and why in row.failure_reason


def test_resume_with_missing_optuna_record_is_refused_before_ray(study: Path) -> None:
    (study / "optuna.journal").unlink()
    t0 = time.time()
    res = run("resume", "s1", "--storage", str(study.parent))
    one_line_error(res, "optuna.journal: missing")
    assert time.time() - t0 < 20 and not (study / "optuna.journal").exists()  # none made empty


@pytest.mark.parametrize(
    ("garbage", "said"),
    [
        (b"garbage, not a journal" * 10, "holds no study 's1'"),  # no whole line: reads empty
        (b"garbage\n" * 3 + b"{torn", "not a readable Optuna journal"),
        (b'{"op_code": 0}\n' + b"x" * 9, "not a readable Optuna journal"),
    ],
)
def test_resume_with_a_garbage_journal_is_refused_and_left_as_found(
    study: Path, garbage: bytes, said: str
) -> None:
    (study / "optuna.journal").write_bytes(garbage)
    res = run("resume", "s1", "--storage", str(study.parent))
    one_line_error(res, f"optuna.journal: {said}")
    assert (study / "optuna.journal").read_bytes() == garbage  # never cut or emptied


# -- 5: a relaunch keeps the study's settings --------------------------------------------
def test_relaunch_refuses_contradictory_flags(study: Path) -> None:
    info = read_study(study)
    for opts, needle in (
        (LaunchOptions(name="s1", sampler="tpe"), "--sampler tpe (study has random)"),
        (LaunchOptions(name="s1", objectives=["f1_macro:max"]), "--objectives f1_macro:max"),
        (LaunchOptions(name="s1", num_samples=1), "it can only grow"),
        (LaunchOptions(name="s1", seed=3), "--seed 3 (study has 0)"),
    ):
        with pytest.raises(RevstudyError, match="keeps its settings") as e:
            relaunch_changes(opts, info, None)
        assert needle in str(e.value)
    assert relaunch_changes(LaunchOptions(name="s1", sampler="random"), info, None) == 2
    assert relaunch_changes(LaunchOptions(name="s1", num_samples=5), info, None) == 5
    with pytest.raises(RevstudyError, match="sha256 differs"):
        relaunch_changes(LaunchOptions(name="s1"), info, "0" * 64)


def test_relaunch_cli_says_what_it_refused(study: Path) -> None:
    res = run("launch", "--name", "s1", "--storage", str(study.parent), "--sampler", "tpe")
    one_line_error(res, "study s1 exists and keeps its settings", "--sampler tpe")


# -- 6: a truncated study.json ---------------------------------------------------------------
def test_truncated_study_json(tmp_path: Path, study: Path) -> None:
    good = synthetic_study(study.parent)
    text = (study / "study.json").read_text()
    (study / "study.json").write_text(text[: len(text) // 2])
    root = str(study.parent)
    one_line_error(run("status", "s1", "--storage", root), "study.json: damaged")
    one_line_error(run("resume", "s1", "--storage", root), "study.json: damaged")
    res = run("list", "--storage", root, "--json")
    assert res.exit_code == 0
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert "damaged" in rows["s1"] and rows[json.loads((good / "study.json").read_text())["name"]]
    assert "damaged" in run("list", "--storage", root).stdout


# -- 9: resource and retry flags -------------------------------------------------------------
@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--gpus-per-trial", "-1", "--gpus-per-trial -1: a trial trains on one GPU"),
        ("--gpus-per-trial", "2", "--gpus-per-trial 2: a trial trains on one GPU"),
        ("--cpus-per-trial", "-1", "--cpus-per-trial -1: must be > 0"),
        ("--cpus-per-trial", "0", "--cpus-per-trial 0: must be > 0"),
        ("--max-failures", "-5", "--max-failures -5"),
        ("--num-samples", "0", "--num-samples 0: must be >= 1"),
        ("--max-concurrent", "-2", "--max-concurrent -2"),
        ("--time-budget", "0", "--time-budget 0: must be > 0"),
        ("--sampler", "bogus", "--sampler: choose from"),
    ],
)
def test_bad_flags_fail_before_anything_exists(
    tmp_path: Path, csv: Path, flag: str, value: str, needle: str
) -> None:
    storage = tmp_path / "st"
    res = run("launch", "--name", "x", "--data", str(csv), "--storage", str(storage), flag, value)
    one_line_error(res, needle)
    assert not storage.exists()


# -- 8: --address -----------------------------------------------------------------------------
def test_ray_client_address_is_refused(tmp_path: Path, csv: Path) -> None:
    res = run("launch", "--name", "x", "--data", str(csv), "--address", "ray://head:10001",
              "--storage", str(tmp_path / "st"))  # fmt: skip
    one_line_error(res, "Ray Client (ray://) is not supported")
    assert not (tmp_path / "st").exists()


def test_dead_address_fails_fast() -> None:
    t0 = time.time()
    with pytest.raises(RevstudyError, match="no Ray head answers there"):
        check_address("127.0.0.1:1")
    assert time.time() - t0 < 30
    with pytest.raises(RevstudyError, match="expected auto or HOST:PORT"):
        check_address("localhost")
    check_address("auto")  # checked by Ray itself, which says which cluster it joined


def test_epochs_table_with_only_torn_lines_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "trials" / "t1" / "epochs.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("{")
    with pytest.warns(UserWarning):
        assert read_epochs(tmp_path).empty
    assert isinstance(read_epochs(tmp_path / "none"), pd.DataFrame)
