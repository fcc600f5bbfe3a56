"""Issue 32, "data written where it must not be": every path a command writes is checked
before any work (`revstudy.outputs`): no link is written through, no device or FIFO
replaced, no file of a study or run folder targeted. One row per case; the next round adds
rows, not files."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from revstudy.data.dataset import read_dataset
from revstudy.training.config import TrialConfig
from revstudy.training.runs import train_repeats, write_run
from tests.conftest import synthetic_rows, write_csv
from tests.faults.conftest import one_line_error, run, synthetic_study

TINY = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=1, cd_draws=1)


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished study, a trained model folder, a data file and a plain file."""
    root = tmp_path_factory.mktemp("outputs")
    csv = write_csv(root / "d.csv", synthetic_rows(40))
    torch.set_num_threads(1)
    ds = read_dataset(csv)
    write_run(root / "model", train_repeats(TINY, ds), ds, "cpu")
    (root / "plain.txt").write_text("a user's file")
    os.mkfifo(root / "fifo")
    (root / "config.yaml").write_text("epochs: 1\nblocks: [1, 1, 1, 1, 1]\nhidden_ratio: 0.25\n")
    return {
        "study": synthetic_study(root / "st"),
        "model": root / "model",
        "csv": csv,
        "plain": root / "plain.txt",
        "config": root / "config.yaml",
        "fifo": root / "fifo",
        "root": root,
    }


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# (case, the command's arguments from the places, what the one-line error names)
Case = tuple[str, Callable[[dict[str, Path]], list[str]], tuple[str, ...]]
CASES: list[Case] = [
    ("report over the study's database",
     lambda p: ["report", str(p["study"]), "--out", str(p["study"] / "optuna.db")],
     ("--out", "optuna.db", "study folder")),
    ("report over a trial's record",
     lambda p: ["report", str(p["study"]), "--csv", str(p["study"] / "trials" / "t.csv")],
     ("--csv", "study folder")),
    ("export over study.json",
     lambda p: ["export", str(p["study"]), "--out", str(p["study"] / "study.json")],
     ("--out", "study.json", "study folder")),
    ("export a folder of configs into the study",
     lambda p: ["export", str(p["study"]), "--top", "2", "--out", str(p["study"] / "best")],
     ("--out", "study folder")),
    ("export --top 1 into an existing folder",
     lambda p: ["export", str(p["study"]), "--out", str(p["root"])],
     ("--out", "is a directory", "best.yaml")),
    # a FIFO of our own, never a system device: run against code without the check, as
    # root, the old report replaced /dev/null with a regular file
    ("report onto a FIFO",
     lambda p: ["report", str(p["study"]), "--out", str(p["fifo"])],
     ("--out", "fifo", "not a regular file")),
    ("evaluate into a folder",
     lambda p: ["evaluate", "--model", str(p["model"]), "--data", str(p["csv"]), "--out",
                str(p["root"])],
     ("--out", "is a directory")),
    ("evaluate over the model's metrics.json",
     lambda p: ["evaluate", "--model", str(p["model"]), "--data", str(p["csv"]), "--out",
                str(p["model"] / "metrics.json")],
     ("--out", "run folder")),
    ("evaluate under a file",
     lambda p: ["evaluate", "--model", str(p["model"]), "--data", str(p["csv"]), "--out",
                str(p["plain"] / "x.json")],
     ("--out", "is not a folder")),
    ("train into a file",
     lambda p: ["train", "--config", str(p["config"]), "--data", str(p["csv"]), "--out",
                str(p["plain"])],
     ("--out", "not a folder")),
    ("train into a study",
     lambda p: ["train", "--config", str(p["config"]), "--data", str(p["csv"]), "--out",
                str(p["study"] / "trials" / "mine")],
     ("--out", "study folder")),
    ("launch with a file as storage",
     lambda p: ["launch", "--space", "quick", "--data", str(p["csv"]), "--storage",
                str(p["plain"]), "--name", "x"],
     ("--storage", "not a folder")),
    ("a NUL byte in the storage path",
     lambda p: ["status", "x", "--storage", "st\x00x"],
     ("--storage", "NUL")),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_an_output_a_command_must_not_write_is_refused_before_any_work(
    places: dict[str, Path], case: Case
) -> None:
    _, args, needles = case
    before = {k: _digest(places[k]) for k in ("study", "model")}
    plain = places["plain"].read_text()
    one_line_error(run(*args(places)), *needles)
    assert {k: _digest(places[k]) for k in ("study", "model")} == before
    assert places["plain"].read_text() == plain
    assert not (places["study"] / "trials" / "mine").exists()


def test_train_replaces_links_planted_in_its_folder_and_never_writes_through(
    places: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    victims = {}
    for name in ("config.yaml", "model.pt", "metrics.json", "prior.pt", "arrays.npz"):
        victim = tmp_path / f"victim-{name}"
        victim.write_text("keep me")
        (out / name).symlink_to(victim)
        victims[name] = victim
    res = run("train", "--config", str(places["config"]), "--data", str(places["csv"]),
              "--out", str(out), "--threads", "1")  # fmt: skip
    assert res.exit_code == 0, res.output
    for name, victim in victims.items():
        assert victim.read_text() == "keep me", name
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 0, name


def test_a_linked_output_file_is_refused(places: dict[str, Path], tmp_path: Path) -> None:
    link = tmp_path / "r.html"
    link.symlink_to(places["plain"])
    one_line_error(run("report", str(places["study"]), "--out", str(link)), "symbolic link")
    assert places["plain"].read_text() == "a user's file"


def test_the_report_may_still_be_written_beside_the_study(places: dict[str, Path]) -> None:
    target = places["study"] / "report.html"
    res = run("report", str(places["study"]), "--out", str(target))
    assert res.exit_code == 0, res.output
    assert target.is_file() and os.path.getsize(target) > 0
    target.unlink()
