"""Issue #24, points 1-3 and 7: links, special files, YAML alias bombs and zip bombs in
folders revstudy is handed. Nothing may hang, exhaust memory, print a traceback, or read,
write or remove a file outside the folder."""

from __future__ import annotations

import json
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from revstudy.errors import RevstudyError
from revstudy.files import UnsafeFileError, read_json, read_regular, write_json_atomic
from revstudy.optunafile import optuna_storage
from revstudy.study.records import append_epochs, drop_finished_checkpoints
from revstudy.studyfolder import trial_dir
from revstudy.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from revstudy.trialtable import build_trials_table, read_epochs
from revstudy.yamlfile import YamlRefused, read_yaml
from tests.faults.conftest import one_line_error, run, synthetic_study

BOMB = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    """A victim folder outside every study: nothing in it may change."""
    d = tmp_path / "victim"
    d.mkdir()
    (d / "epochs.jsonl").write_text('{"keep": 1}\n{"keep": 2}')  # no final newline
    (d / "precious.npz").write_bytes(b"precious")
    (d / "state.pt").write_bytes(b"precious checkpoint")
    return d


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


# -- 1: links planted in a study folder ------------------------------------------------------
def test_appending_epochs_never_writes_through_a_link(tmp_path: Path, outside: Path) -> None:
    before = _snapshot(outside)
    tdir = tmp_path / "s" / "trials" / "t1"
    tdir.mkdir(parents=True)
    (tdir / "epochs.jsonl").symlink_to(outside / "epochs.jsonl")
    with pytest.raises(UnsafeFileError, match="not a file of this trial"):
        append_epochs(tmp_path / "s", "t1", [{"epoch": 1}])
    assert _snapshot(outside) == before


def test_a_linked_trial_folder_is_reported_never_followed(tmp_path: Path, outside: Path) -> None:
    study = tmp_path / "s"
    (study / "trials").mkdir(parents=True)
    (outside / "result.json").write_text(json.dumps({"report": {}, "metrics": {"epoch": 1}}))
    before = _snapshot(outside)
    (study / "trials" / "evil").symlink_to(outside, target_is_directory=True)
    assert drop_finished_checkpoints(study) == 0
    table = build_trials_table(study, {})
    (row,) = table.to_dict("records")
    assert row["trial_id"] == "evil" and row["state"] == "DAMAGED"
    assert "symbolic link" in row["failure_reason"]
    assert read_epochs(study).empty
    with pytest.raises(RevstudyError, match="symbolic link"):
        trial_dir(study, "evil")
    assert _snapshot(outside) == before


def test_temp_files_have_fresh_names_so_a_planted_link_is_never_written(
    tmp_path: Path, outside: Path
) -> None:
    before = _snapshot(outside)
    folder = tmp_path / "s"
    folder.mkdir()
    # the fixed names older versions used
    for name in (f".result.json.{os.getpid()}.tmp", f".state.pt.{os.getpid()}.tmp"):
        (folder / name).symlink_to(outside / "precious.npz")
    write_json_atomic(folder / "result.json", {"ok": 1})
    save_checkpoint(folder / "state.pt", {"x": torch.zeros(2)})
    # a link in place of the target is replaced, not written through
    (folder / "study.json").symlink_to(outside / "precious.npz")
    write_json_atomic(folder / "study.json", {"ok": 2})
    assert not (folder / "study.json").is_symlink()
    assert _snapshot(outside) == before
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()]


# -- 2: special files ------------------------------------------------------------------------
def test_dev_zero_and_fifos_are_refused_without_reading_or_waiting(tmp_path: Path) -> None:
    zero = tmp_path / "result.json"
    zero.symlink_to("/dev/zero")
    assert read_json(zero) is None
    fifo = tmp_path / "failure.json"
    os.mkfifo(fifo)
    done: list[object] = []
    t = threading.Thread(target=lambda: done.append(read_json(fifo)), daemon=True)
    t.start()
    t.join(10)
    assert done == [None], "reading a FIFO must not block"
    big = tmp_path / "trial.json"
    with big.open("wb") as f:
        f.truncate(65 * 2**20)  # sparse: over the limit without using the disk
    with pytest.raises(UnsafeFileError, match="over the"):
        read_regular(big)


def test_status_of_a_study_with_a_fifo_result_ends_with_it_damaged(tmp_path: Path) -> None:
    folder = synthetic_study(tmp_path / "st")
    tid = sorted(p.name for p in (folder / "trials").iterdir())[0]
    (folder / "trials.parquet").unlink()  # the table is rebuilt from the folders
    res_json = folder / "trials" / tid / "result.json"
    res_json.unlink(missing_ok=True)
    os.mkfifo(res_json)
    done: list[object] = []
    t = threading.Thread(
        target=lambda: done.append(run("status", folder.name, "--storage", str(folder.parent))),
        daemon=True,
    )
    t.start()
    t.join(60)
    assert done, "status hung on a FIFO"
    res = done[0]
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]


# -- 3: YAML alias bombs ---------------------------------------------------------------------
def test_yaml_aliases_are_refused_before_expansion(tmp_path: Path) -> None:
    bomb = tmp_path / "space.yaml"
    bomb.write_text(BOMB)
    with pytest.raises(YamlRefused, match="aliases"):
        read_yaml(bomb)
    res = run("launch", "--space", str(bomb), "--name", "x", "--storage", str(tmp_path / "st"))
    one_line_error(res, "space.yaml", "aliases (*name) are not allowed")
    assert not (tmp_path / "st").exists()


def test_a_model_config_bomb_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    for name in ("model.pt", "prior.pt", "metrics.json"):
        (model / name).write_bytes(b"x")
    (model / "config.yaml").write_text(BOMB)
    one_line_error(run("predict", "--model", str(model), "--smiles", "CCC"), "aliases")


# -- 7: zip bombs ----------------------------------------------------------------------------
def _zip_bomb(path: Path, inflated: int) -> None:
    chunk = b"\0" * 2**20
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z,
        z.open("archive/data/0", "w", force_zip64=True) as f,
    ):
        for _ in range(inflated // len(chunk)):
            f.write(chunk)


def test_a_checkpoint_that_would_inflate_past_the_limit_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from revstudy.training import checkpoint

    monkeypatch.setattr(checkpoint, "ARCHIVE_LIMIT", 32 * 2**20)
    bomb = tmp_path / "state.pt"
    _zip_bomb(bomb, 64 * 2**20)
    assert bomb.stat().st_size < 2**20
    loads: list[object] = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a))
    with pytest.raises(CheckpointError, match="would inflate to"):
        load_checkpoint(bomb)
    assert loads == []
    link = tmp_path / "linked.pt"
    link.symlink_to(bomb)
    with pytest.raises(CheckpointError, match="symbolic link"):
        load_checkpoint(link)


def test_a_model_file_zip_bomb_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from revstudy.training import saved

    monkeypatch.setattr(saved, "MODEL_LIMIT", 16 * 2**20)
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.yaml").write_text("epochs: 1\n")
    (model / "metrics.json").write_text("{}")
    _zip_bomb(model / "model.pt", 32 * 2**20)
    (model / "prior.pt").write_bytes(b"x")
    one_line_error(run("predict", "--model", str(model), "--smiles", "CCC"), "would inflate to")


# -- 5: damaged tables -----------------------------------------------------------------------
@pytest.mark.parametrize("table", ["trials.parquet", "epochs.parquet"])
def test_damaged_tables_are_rebuilt_or_named_never_a_traceback(tmp_path: Path, table: str) -> None:
    folder = synthetic_study(tmp_path / "st")
    other = synthetic_study(tmp_path / "other")
    (folder / table).write_bytes(os.urandom(4096))
    root = str(folder.parent)
    res = run("list", "--storage", root, "--json")
    assert res.exit_code == 0, res.output
    listed = {r["name"]: r for r in json.loads(res.stdout)}
    assert json.loads((folder / "study.json").read_text())["name"] in listed
    res = run("status", folder.name, "--storage", root, "--json")
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    if table == "trials.parquet":  # rebuilt from the trial folders: every trial is there
        assert json.loads(res.stdout)["trials"] == len(list((folder / "trials").iterdir()))
    for args in (["report", str(folder)], ["report", str(folder), "--compare", str(other)]):
        res = run(*args, "--out", str(tmp_path / "r.html"))
        assert res.exit_code == 0 and "Traceback" not in res.output, res.output


@pytest.mark.parametrize("content", [b"[]", b"\xff\xfe not utf-8", b"{torn"])
def test_a_foreign_study_json_is_one_line_under_report(tmp_path: Path, content: bytes) -> None:
    folder = synthetic_study(tmp_path / "st")
    (folder / "study.json").write_bytes(content)
    res = run("report", str(folder), "--out", str(tmp_path / "r.html"))
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert res.stderr.strip().startswith("error: ") and "\n" not in res.stderr.strip()


# -- 9: ids from tables ----------------------------------------------------------------------
def test_an_escaping_id_in_a_table_reads_nothing_outside(tmp_path: Path, outside: Path) -> None:
    import numpy as np
    import pandas as pd

    import analysis

    np.savez(outside / "arrays.npz", secret=np.arange(3))
    folder = synthetic_study(tmp_path / "st")
    table = pd.read_parquet(folder / "trials.parquet")
    rel = os.path.relpath(outside, folder / "trials")
    table.loc[0, "trial_id"] = rel  # "../../victim"
    table.to_parquet(folder / "trials.parquet", index=False)
    s = analysis.load_study(folder)
    with pytest.warns(analysis.DamagedFile, match="is not a plain name"):
        assert s.arrays(rel) is None  # refused, and said
    with pytest.warns(analysis.DamagedFile, match="is not a plain name"):
        html = analysis.write_report(folder, tmp_path / "r.html").read_text()
    assert "Traceback" not in html and "is not a plain name" in html


# -- 4: a foreign Optuna record ---------------------------------------------------------------
def test_another_studys_database_is_refused_before_ray(study: Path) -> None:
    import optuna

    info = json.loads((study / "study.json").read_text())
    info["study_id"] = "a" * 32  # what launch writes into study.json and optuna.journal
    (study / "study.json").write_text(json.dumps(info))
    res = run("resume", "s1", "--storage", str(study.parent))
    one_line_error(res, "optuna.journal: belongs to another study", "a" * 32)
    ostudy = optuna.load_study(study_name="s1", storage=optuna_storage(study))
    ostudy.set_user_attr("revstudy_study_id", "b" * 32)
    one_line_error(run("resume", "s1", "--storage", str(study.parent)), "b" * 32)
    from revstudy.studyinfo import foreign_database, read_study

    assert foreign_database(ostudy, read_study(study)) is not None
    ostudy.set_user_attr("revstudy_study_id", "a" * 32)
    assert foreign_database(ostudy, read_study(study)) is None


def test_trials_known_only_to_the_database_are_never_ranked(tmp_path: Path) -> None:
    from revstudy.studyfolder import Objective, rank_finished

    study = tmp_path / "s"
    (study / "trials").mkdir(parents=True)
    phantom = {"status": "TERMINATED", "config": {"epochs": 5}, "error": "",
               "last_result": {"epoch": 5, "f1_macro_skill": 0.9}}  # fmt: skip
    table = build_trials_table(study, {"ghost": phantom})
    (row,) = table.to_dict("records")
    assert row["state"] == "DAMAGED" and "known only to the Optuna record" in row["failure_reason"]
    assert rank_finished(table, [Objective("f1_macro_skill")]).empty


# -- 7: sizes a user can ask for -------------------------------------------------------------
def test_absurd_sizes_are_refused_with_the_limit(tmp_path: Path) -> None:
    from revstudy.data.chem import SHIFT_OUT_OF_RANGE, ShiftOutOfRange, parse_sdf_spectrum
    from revstudy.data.dataset import ppm_to_bin

    assert ppm_to_bin(1e308) == 1023 and ppm_to_bin(-1e308) == 0  # no OverflowError
    for value in ("1e308;0;0", "1e300;0;0", "-80;0;0"):
        with pytest.raises(ShiftOutOfRange):
            parse_sdf_spectrum(value, 4)
    assert parse_sdf_spectrum("230.5;0;0|-2.1;0;1", 4) == [230.5, -2.1]
    assert SHIFT_OUT_OF_RANGE.startswith("shift outside")
    space = tmp_path / "wide.yaml"
    space.write_text("params:\n  y_dim: {type: categorical, choices: [" + ", ".join(
        str(i) for i in range(5000)) + "]}\n")  # fmt: skip
    one_line_error(
        run("launch", "--space", str(space), "--name", "x", "--storage", str(tmp_path / "st")),
        "5000 choices; at most 1000",
    )


def test_elucidate_refuses_a_billion_samples() -> None:
    import numpy as np

    from revstudy.elucidation.elucidate import MAX_SAMPLES, elucidate

    with pytest.raises(RevstudyError, match=f"choose 1 to {MAX_SAMPLES}"):
        elucidate(None, np.zeros(1024), samples=10**9)  # type: ignore[arg-type]


# -- 6: wrong types in study.json ------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("space", "default", 'space is "default", expected a mapping'),
        ("data", {"path": 5, "sha256": "x"}, "data is"),
        ("seed", "0", 'seed is "0", expected an integer >= 0'),
        ("cpus_per_trial", "1", 'cpus_per_trial is "1", expected a number'),
        ("objectives", [], "objectives is [], expected a non-empty list"),
        ("objectives", [{"metric": "f1"}], "entries like {metric"),
        ("objectives", [{"metric": "f1", "mode": "max"}], "study.json: unknown metric 'f1'"),
        ("objectives", ["f1_macro_skill:max"], "entries like {metric"),
        ("num_samples", True, "num_samples is true, expected an integer"),
        ("gpus_per_trial", 2, "gpus_per_trial is 2, expected a number in [0, 1]"),
        ("time_budget_s", "1h", "time_budget_s"),
    ],
)
def test_resume_checks_every_field_before_ray(
    study: Path, field: str, value: object, needle: str
) -> None:
    info = json.loads((study / "study.json").read_text())
    info[field] = value
    (study / "study.json").write_text(json.dumps(info))
    one_line_error(run("resume", "s1", "--storage", str(study.parent)), "study.json", needle)


# -- 8: the storage fails --------------------------------------------------------------------
def test_a_read_only_or_full_storage_is_one_line_naming_path_and_errno(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from revstudy.study import driver

    folder = synthetic_study(tmp_path / "st")

    def read_only(*a: object, **k: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(folder / "report.html"))

    monkeypatch.setattr("analysis._cli.write_report", read_only)
    res = run("report", str(folder))
    one_line_error(res, "report.html: Read-only file system", "errno 30 EROFS", "writable")

    def full(*a: object, **k: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "study.json"))

    monkeypatch.setattr(driver, "read_study", full)
    res = run("resume", folder.name, "--storage", str(folder.parent))
    one_line_error(res, "study.json: No space left on device", "ENOSPC", "revstudy resume")


def test_resume_removes_the_temp_files_an_interrupted_run_left(study: Path) -> None:
    from revstudy.study.records import remove_stale_temps

    (study / "trials" / "t1").mkdir(parents=True)
    left = [study / ".study.json.abc123.tmp", study / "trials" / "t1" / ".state.pt.x9.tmp"]
    for p in left:
        p.write_bytes(b"x" * 100)
    keep = study / "trials" / "t1" / "state.pt"
    keep.write_bytes(b"checkpoint")
    assert remove_stale_temps(study) == 2
    assert not any(p.exists() for p in left) and keep.exists()


def runner_wide(*args: str) -> Any:
    from typer.testing import CliRunner

    from revstudy.cli.app import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def test_list_tells_copied_folders_apart(tmp_path: Path) -> None:
    import shutil

    folder = synthetic_study(tmp_path / "st")
    shutil.copytree(folder, folder.parent / "copy")
    res = run("list", "--storage", str(folder.parent), "--json")
    rows = json.loads(res.stdout)
    assert sorted(r["folder"] for r in rows) == sorted(["copy", folder.name])
    res = runner_wide("list", "--storage", str(folder.parent))
    assert "copy (recorded as synthetic-single)" in res.stdout
    assert "problem(s)" not in res.stdout
    (folder.parent / "copy" / "optuna.db").write_bytes(b"not a database")  # status names it
    assert len(json.loads(run("list", "--storage", str(folder.parent), "--json").stdout)) == 2
    copy_row = next(
        ln for ln in runner_wide("list", "--storage", str(folder.parent)).stdout.splitlines()
        if ln.startswith("│ copy")
    )  # fmt: skip
    assert "1 problem(s): see `revstudy status`" in copy_row


def test_status_and_report_read_trial_states_the_same_way(tmp_path: Path) -> None:
    """Issue #24: with trials.parquet missing, status showed a trial PENDING while the
    report said none finished: both now rebuild the table from the trial folders."""
    import analysis

    folder = synthetic_study(tmp_path / "st")
    (folder / "trials.parquet").unlink()
    tdir = folder / "trials" / "t001"
    tdir.mkdir(parents=True, exist_ok=True)
    (tdir / "trial.json").write_text(json.dumps({"number": 1, "config": {"epochs": 5}}))
    (tdir / "stopped.json").write_text(json.dumps({"epoch": 2}))
    res = run("status", folder.name, "--storage", str(folder.parent), "--json")
    assert res.exit_code == 0, res.output
    by_state = json.loads(res.stdout)["by_state"]
    counts = analysis.load_study(folder).state_counts.to_dict()
    assert by_state == {k: int(v) for k, v in counts.items()}
    assert by_state.get("STOPPED_EARLY", 0) >= 1


def test_records_written_through_temp_files_keep_the_usual_permissions(tmp_path: Path) -> None:
    """Fresh temp names come from mkstemp (0600): the records must still be readable by the
    colleagues a study folder is shared with, as the umask allows."""
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "result.json", {"ok": 1})
        save_checkpoint(tmp_path / "state.pt", {"x": torch.zeros(1)})
    finally:
        os.umask(old)
    for name in ("result.json", "state.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_an_optuna_record_cut_short_is_refused_before_ray(study: Path) -> None:
    """A trial folder whose Optuna trial the record lacks: resuming would count it as never
    run and run another in its place (seen: a journal cut to 40 lines resumed to 13/8)."""
    import optuna

    from revstudy.optunafile import optuna_storage

    ostudy = optuna.load_study(study_name="s1", storage=optuna_storage(study))
    ostudy.ask()  # Optuna trial 0 is recorded; 1 and 2 are not
    for tid, number in (("t0", 0), ("t2", 2), ("t1", 1)):
        (study / "trials" / tid).mkdir(parents=True)
        (study / "trials" / tid / "trial.json").write_text(json.dumps({"number": number}))
    res = run("resume", "s1", "--storage", str(study.parent))
    one_line_error(
        res, "optuna.journal: holds no record of 2 trial folder(s) (e.g. trials/t1, Optuna trial 1)"
    )
    assert not (study / "ray").exists() and not (study / "trials.parquet").exists()
