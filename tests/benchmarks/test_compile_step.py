"""benchmarks/compile_step.py on a CPU: arguments, and an eager-only run's record."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import compile_step  # noqa: E402


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--modes", "default"], "include eager"),
        (["--modes", "eager,turbo"], "unknown ['turbo']"),
        (["--epochs", "1"], "--epochs must be >= 2"),
    ],
)
def test_bad_arguments(
    synthetic_csv: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        compile_step.parse_args(["--data", str(synthetic_csv), *args])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_defaults_per_device(synthetic_csv: Path, tmp_path: Path) -> None:
    assert compile_step.parse_args(["--data", str(synthetic_csv)]).modes == "eager,default"
    with pytest.raises(SystemExit):
        compile_step.parse_args(["--data", str(tmp_path / "none.csv")])


@pytest.mark.slow
def test_an_eager_run_is_recorded(synthetic_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    argv = ["--data", str(synthetic_csv), "--modes", "eager", "--epochs", "2", "--out", str(out)]
    assert compile_step.main(argv) == 0
    doc = json.loads(out.read_text())
    (run,) = doc["runs"]
    assert run["mode"] == "eager" and len(run["epoch_seconds"]) == 2
    assert run["speedup_steady"] == 1.0 and run["train_loss_max_rel_diff"] == 0.0
    assert run["inv_error_max"] < 1e-4


def test_each_finished_mode_is_written_before_the_next_starts(
    synthetic_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "c.json"
    seen: list[list[str]] = []

    def fake(data: str, mode: str, *rest: object) -> dict[str, object]:
        if out.is_file():
            seen.append([r["mode"] for r in json.loads(out.read_text())["runs"]])
        if mode == "default":
            raise KeyboardInterrupt  # a timeout's kill, as far as this process can tell
        return {"mode": mode, "steady_epoch_seconds": 1.0, "first_epoch_seconds": 2.0,
                "train_loss": [0.5, 0.4]}  # fmt: skip

    monkeypatch.setattr(compile_step, "isolated", fake)
    argv = ["--data", str(synthetic_csv), "--modes", "eager,default", "--out", str(out)]
    with pytest.raises(KeyboardInterrupt):
        compile_step.main(argv)
    assert seen == [["eager"]]
    assert json.loads(out.read_text())["runs"][0]["speedup_steady"] == 1.0
