"""A trial trains on the device it reserved, whatever the worker can see (issue #23.1), and
is capped at its share of the GPU's memory (#23.4); CUDA is faked, so this runs on a CPU."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from revstudy.data.dataset import read_dataset
from revstudy.errors import RevstudyError
from revstudy.study import devices
from revstudy.study.devices import (
    Device,
    cap_memory,
    check_assigned,
    check_gpu_share,
    oom_message,
    trial_device,
)
from revstudy.study.spaces import load_space
from revstudy.study.trial import train_trial
from revstudy.study.trial_context import TrialContext
from revstudy.studyfolder import FINAL_KEY

SPACE = "fixed: {blocks: [1, 1, 1, 1, 1], hidden_ratio: 0.25, cd_draws: 1, epochs: 2}\n"


def test_the_device_follows_the_reservation() -> None:
    assert trial_device(0) == "cpu"
    assert trial_device(0.25) == "cuda" and trial_device(1) == "cuda"
    for bad in (2, 1.5, -1, float("nan")):
        with pytest.raises(RevstudyError, match="a trial trains on one GPU"):
            check_gpu_share(bad)


@pytest.mark.parametrize(
    ("device", "ids", "cuda", "needle"),
    [
        ("cuda", [], True, "Ray assigned its worker no GPU"),
        ("cuda", ["0"], False, "torch in its worker sees no CUDA device"),
        ("cpu", ["0"], True, "reserved no GPU but Ray assigned its worker GPU"),
    ],
)
def test_a_contradicting_assignment_is_refused(
    device: Any, ids: list[str], cuda: bool, needle: str
) -> None:
    with pytest.raises(RevstudyError, match=needle):
        check_assigned(device, ids, cuda)


def test_agreeing_assignments_pass() -> None:
    check_assigned("cuda", ["3"], True)
    check_assigned("cpu", [], True)  # a GPU machine, a CPU trial: fine, it stays on the CPU
    check_assigned("cpu", [], False)


def _trial(tmp_path: Path, csv: Path, device: Device, gpu_share: float) -> list[dict[str, Any]]:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    reports: list[dict[str, Any]] = []
    context = TrialContext(
        study=tmp_path / "s",
        space=load_space(str(space)),
        dataset=read_dataset(csv),
        repeats=1,
        seed=1,
        objectives=("f1_macro_skill",),
        gpu_share=gpu_share,
    )
    train_trial({}, context, "t1", report=reports.append, device=device)
    return reports


def test_a_cpu_trial_stays_on_the_cpu_where_cuda_is_visible(
    tmp_path: Path, synthetic_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ray 2.60 leaves CUDA_VISIBLE_DEVICES alone for num_gpus=0: the worker sees the GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    reports = _trial(tmp_path, synthetic_csv, device="cpu", gpu_share=0.0)
    assert reports[-1][FINAL_KEY] == 1
    result = json.loads((tmp_path / "s" / "trials" / "t1" / "result.json").read_text())
    assert result["device"] == "cpu"


def test_a_gpu_share_caps_the_process_and_releases_its_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[Any] = []

    class Props:
        total_memory = 8 * 2**30

    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", calls.append)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props())
    assert cap_memory("cuda", 0.25) == pytest.approx(2.0) and calls == [0.25]
    assert cap_memory("cuda", 1.0) is None and cap_memory("cpu", 0.25) is None and len(calls) == 1
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("emptied"))
    devices.release_memory("cuda")
    assert calls[-1] == "emptied"


def test_out_of_memory_names_the_share_and_the_fix(
    tmp_path: Path, synthetic_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devices, "cap_memory", lambda d, s: 2.0)
    monkeypatch.setattr("revstudy.study.trial.cap_memory", lambda d, s: 2.0)

    def oom(self: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr("revstudy.training.fused.Repeats.train_epoch", oom)
    with pytest.raises(RevstudyError) as err:
        _trial(tmp_path, synthetic_csv, device="cpu", gpu_share=0.25)
    assert str(err.value) == oom_message(0.25, 2.0, 1)
    failure = json.loads((tmp_path / "s" / "trials" / "t1" / "failure.json").read_text())
    assert "0.25 GPU share" in failure["reason"] and "raise --gpus-per-trial" in failure["reason"]


def test_the_default_share_follows_the_clusters_gpus(capsys: pytest.CaptureFixture[str]) -> None:
    from revstudy.study.devices import GPU_SHARE, default_gpu_share

    assert default_gpu_share(None, 1) == GPU_SHARE and default_gpu_share("auto", 8) == GPU_SHARE
    assert default_gpu_share(None, 0) == 0 and capsys.readouterr().err == ""
    # a cluster without GPUs at launch: CPU trials, and how to wait for GPU workers instead
    assert default_gpu_share("head:6379", 0) == 0
    assert "--gpus-per-trial 0.25 makes trials wait for GPU workers" in capsys.readouterr().err
