"""Full fp32 on CUDA unless a config allows TF32 (the flags are process-wide, so each
process that trains or infers sets them; on CPU they are inert and can be checked)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from revstudy.data.dataset import read_dataset
from revstudy.training.config import TrialConfig
from revstudy.training.precision import fp32_precision, set_determinism, set_fp32_precision
from revstudy.training.splits import SplitTensors
from revstudy.training.trainer import Trainer

TINY = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=1, cd_draws=1)


@pytest.fixture(autouse=True)
def _restore_flags():
    yield
    set_fp32_precision(False)
    set_determinism(False)


def test_helper_sets_both_cuda_kernels() -> None:
    set_fp32_precision(True)
    assert fp32_precision() == {"cuda.matmul": "tf32", "cudnn.conv": "tf32"}
    set_fp32_precision(False)
    assert fp32_precision() == {"cuda.matmul": "ieee", "cudnn.conv": "ieee"}


def test_default_config_is_full_precision() -> None:
    assert TrialConfig().allow_tf32 is False
    assert TrialConfig.from_dict({"allow_tf32": True}).allow_tf32 is True


def test_trainer_sets_the_flags_of_its_process(synthetic_csv: Path) -> None:
    """A Ray worker builds a Trainer before its first kernel: the Trainer sets precision."""
    data = SplitTensors.build(read_dataset(synthetic_csv), TINY)
    set_fp32_precision(True)  # what a previous trial in a reused worker might have left
    Trainer(TINY, data)
    assert fp32_precision()["cudnn.conv"] == "ieee"
    Trainer(TINY.replace(allow_tf32=True), data)
    assert fp32_precision()["cudnn.conv"] == "tf32"


def test_deterministic_configs_switch_the_process_to_deterministic_kernels(
    synthetic_csv: Path,
) -> None:
    """Issue #23.5: `deterministic: true` turns on cuDNN's and torch's deterministic
    algorithms (cuBLAS's workspace variable set before any handle exists); the next trial
    in a reused worker turns them off again. On CPU training is deterministic either way."""
    assert TrialConfig().deterministic is False
    data = SplitTensors.build(read_dataset(synthetic_csv), TINY)
    runs = []
    for flag in (True, False):
        t = Trainer(TINY.replace(deterministic=flag), data)
        assert torch.are_deterministic_algorithms_enabled() is flag
        assert torch.backends.cudnn.deterministic is flag and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        t.train_epoch()
        runs.append(t.history[-1].train_loss)
    assert runs[0] == runs[1]
