"""The Python API: importable without torch or ray, functions that mirror the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import revstudy
import revstudy.api
from revstudy.errors import RevstudyError


def test_import_loads_neither_torch_nor_ray() -> None:
    code = (
        "import sys, revstudy; revstudy.launch; revstudy.status; "
        "print('torch' in sys.modules, 'ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_api_refuses_bad_options_before_starting(tmp_path: Path, synthetic_csv: Path) -> None:
    with pytest.raises(RevstudyError, match="--num-samples 0"):
        revstudy.launch("quick", data=str(synthetic_csv), num_samples=0, storage=str(tmp_path))
    with pytest.raises(RevstudyError, match="study name"):
        revstudy.launch("quick", data=str(synthetic_csv), name="../x", storage=str(tmp_path))
    with pytest.raises(RevstudyError, match="unknown option"):
        revstudy.launch("quick", bogus_option=1)
    with pytest.raises(AttributeError):
        revstudy.nothing_here  # noqa: B018


def test_status_and_report_of_a_study_folder(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent / "analysis"))
    from analysis_synthetic import make_study

    folder = make_study(tmp_path, "single")
    s = revstudy.status(str(folder))
    assert s["trials"] == len(__import__("pandas").read_parquet(folder / "trials.parquet"))
    page = revstudy.report(str(folder), out=tmp_path / "r.html")
    assert page.is_file() and 'id="answer"' in page.read_text()


def test_train_returns_a_run(tmp_path: Path, synthetic_csv: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("blocks: [1, 1, 1, 1, 1]\nhidden_ratio: 0.25\nepochs: 1\ncd_draws: 1\n")
    res = revstudy.train(cfg, data=str(synthetic_csv), device="cpu", out=tmp_path / "run")
    assert revstudy.train_config is revstudy.train  # the older name keeps working
    assert len(res.repeats) == 1 and (tmp_path / "run" / "metrics.json").is_file()


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: revstudy.api.launch(num_samples="2"), "--num-samples '2': expected an integer"),
        (
            lambda: revstudy.api.launch(cpus_per_trial="1"),
            "--cpus-per-trial '1': expected a number",
        ),
        (
            lambda: revstudy.api.launch(time_budget_s="1h"),
            "--time-budget-s '1h': expected a number",
        ),
        (lambda: revstudy.api.launch(space=123), "space 123: expected a name or path"),
        (lambda: revstudy.api.launch(name=5), "name 5: expected a name or path"),
        (lambda: revstudy.api.launch(data=5), "data 5: expected a name or path"),
        (lambda: revstudy.api.launch(bogus=1), "launch: unknown option(s) bogus"),
        (lambda: revstudy.api.launch(baseline="no"), "--baseline 'no': expected true or false"),
        (lambda: revstudy.api.report(None), "study None: expected a name or path"),
        (lambda: revstudy.api.report(5), "study 5"),
        (lambda: revstudy.api.status(None), "study None"),
        (lambda: revstudy.api.resume(None), "study None"),
        (lambda: revstudy.api.train(5), "config 5"),
        (lambda: revstudy.api.train(repeats=0), "repeats 0: expected an integer >= 1"),
        (lambda: revstudy.api.train(repeats="3"), "repeats '3'"),
    ],
)
def test_the_api_refuses_bad_arguments_as_the_cli_does(call: Any, needle: str) -> None:
    """Issue #24.10: RevstudyError with the CLI's kind of message, never a raw TypeError
    or a silently empty result, and nothing is started."""
    with pytest.raises(RevstudyError) as err:
        call()
    assert needle in str(err.value) and "\n" not in str(err.value)
