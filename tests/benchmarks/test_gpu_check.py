"""benchmarks/gpu_check.py as far as a CPU allows: arguments, the CPU refusal, parsing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check  # noqa: E402


def test_refuses_without_cuda_with_a_clear_message(synthetic_csv: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--data", str(synthetic_csv)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2
    assert "no CUDA device" in res.stderr and res.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpus-per-trial", "0"], "--gpus-per-trial must be in (0, 1]"),
        (["--gpus-per-trial", "1.5"], "--gpus-per-trial must be in (0, 1]"),
        (["--samples", "0"], "--samples must be >= 1"),
    ],
)
def test_bad_arguments(
    synthetic_csv: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        gpu_check.parse_args(["--data", str(synthetic_csv), *args])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_missing_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--data", str(tmp_path / "none.csv")])
    assert "file not found" in capsys.readouterr().err


def test_defaults(synthetic_csv: Path) -> None:
    a = gpu_check.parse_args(["--data", str(synthetic_csv)])
    assert a.gpus_per_trial == 0.25 and a.samples == 8 and a.out.endswith("gpu_check.json")
    assert a.only is None and gpu_check.PHASES[-1] == "compile"  # the slowest runs last
    assert gpu_check.PHASES[0] == "packs"  # issue #31: its figures first when a GPU is lent
    assert a.pack_sizes == [1, 4, 16] and a.pack_spaces == ["quick"] and a.pack_samples == 32


def test_unknown_phase(synthetic_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--data", str(synthetic_csv), "--only", "paper", "warp"])
    assert "invalid choice: 'warp'" in capsys.readouterr().err


def test_nvidia_smi_lines_and_summary() -> None:
    assert gpu_check.parse_smi_line("87, 1234\n") == (87.0, 1234.0)
    assert gpu_check.parse_smi_line("[N/A], 10") is None
    assert gpu_check.parse_smi_line("utilization.gpu [%], memory.used [MiB]") is None
    s = gpu_check.summarise_util([(0.0, 50.0, 100.0), (0.5, 100.0, 300.0)])
    assert s == {"samples": 2, "sm_util_mean": 75.0, "sm_util_max": 100.0, "mem_mib_max": 300.0}
    assert gpu_check.summarise_util([]) == {"samples": 0}


def test_mid_training_means_a_checkpoint_and_no_result(tmp_path: Path) -> None:
    for tid, files in {"a": ["state.pt"], "b": ["state.pt", "result.json"], "c": []}.items():
        (tmp_path / tid).mkdir()
        for f in files:
            (tmp_path / tid / f).write_text("x")
    assert gpu_check.mid_training(tmp_path) == {"a"}


def test_nvidia_smi_watches_this_process_gpu() -> None:
    assert gpu_check.smi_index("") == "0" and gpu_check.smi_index("3,1") == "3"
    assert gpu_check.smi_index("GPU-5f1c") == "GPU-5f1c"


def test_the_budget_bounds_every_command() -> None:
    assert gpu_check.Deadline(None).timeout(600) == 600
    d = gpu_check.Deadline(100)
    assert 99 <= d.timeout(600) <= 100 and d.timeout(30) == 30
    assert gpu_check.Deadline(-5).timeout(600) == 1.0


def test_one_failing_run_keeps_the_phases_other_figures(
    synthetic_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #23.6: the TF32 run failing must not lose the fp32 figure."""

    def fake(data: str, work: Path, repeats: int, **kw: object) -> dict[str, object]:
        if kw.get("allow_tf32"):
            raise RuntimeError("no module named revstudy")
        return {"inv_error_max": 2e-6, "train_seconds_total": 8.0, "figures": [{"f1": 0.1}]}

    monkeypatch.setattr(gpu_check, "paper_run", fake)
    args = gpu_check.parse_args(["--data", str(synthetic_csv)])
    doc: dict = {}
    checks: dict = {}
    saved: list[dict] = []
    gpu_check.run_phase("paper", args, tmp_path, doc, checks, lambda: saved.append(dict(doc)))
    assert doc["paper"]["fp32"]["inv_error_max"] == 2e-6 and saved  # saved before TF32 ran
    assert "no module named revstudy" in doc["paper"]["tf32"]["error"]
    assert checks == {"paper_inv_error_max_le_1e-5": True}
    assert gpu_check.identical(doc["paper"]["fp32"], {"figures": [{"f1": 0.1}]}) is True
    assert gpu_check.identical(doc["paper"]["fp32"], doc["paper"]["tf32"]) is None


def test_the_packs_phase_runs_the_compiled_packs_after_the_eager_ones(
    synthetic_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--pack-compile MODE` runs every space and size again with compile_step MODE, after
    the eager ones (the figures the issue asks for first); without it none compiles."""
    import pack_throughput

    runs: list[tuple[str, int, str]] = []

    def fake(data: str, storage: Path, space: str, pack: int, *a: object, **kw: object) -> dict:
        runs.append((space, pack, str(kw["compile_step"])))
        return {"pack": pack, "compile_step": kw["compile_step"]}

    monkeypatch.setattr(pack_throughput, "study_run", fake)
    argv = ["--data", str(synthetic_csv), "--pack-sizes", "1", "16"]
    got = gpu_check.packs_phase(gpu_check.parse_args(argv), tmp_path, lambda: None, {})
    assert runs == [("quick", 1, "off"), ("quick", 16, "off")] and len(got["quick"]) == 2
    runs.clear()
    argv += ["--pack-compile", "reduce-overhead"]
    gpu_check.packs_phase(gpu_check.parse_args(argv), tmp_path, lambda: None, {})
    assert [r[2] for r in runs] == ["off", "off", "reduce-overhead", "reduce-overhead"]
