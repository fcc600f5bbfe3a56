"""Which device a study trial trains on, decided by what it reserved, and its GPU memory share.

Ray 2.60 no longer hides the GPUs from workers that reserved none (it leaves
`CUDA_VISIBLE_DEVICES` alone for `num_gpus=0`), so "CUDA is available" says nothing about
whether a trial may use it: a trial on a GPU machine launched with `--gpus-per-trial 0` would
train on `cuda:0` unaccounted. The driver therefore decides the device from the trial's
reservation (`trial_device`), and the worker checks that Ray agrees (`check_assigned`) before
it touches a GPU. A trial trains on one GPU, so a reservation above one is refused at launch.

Trials that share a GPU (`--gpus-per-trial 0.25`) are capped at their share of its memory
(`cap_memory`): without a cap one trial's cached memory can starve the others, and an
out-of-memory error names the share and the fix (`oom_message`). Ray reuses worker processes
between trials, so a finished trial hands its cached memory back (`release_memory`).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence
from typing import Any, Literal

from revstudy.errors import RevstudyError

Device = Literal["cpu", "cuda"]

# A trial's share of a GPU when --gpus-per-trial is not given and the cluster has GPUs. A
# trial is far too small to fill one: on an H200 (issue #14's measurement) four quick-study
# trials per GPU (0.25 each) still left the SMs 49 % idle. A paper-configuration trial peaks
# at 0.8 GB of host memory with one repeat and 3.7 GB with ten fused ones (CPU,
# benchmarks/results/train_repeats.json), so four fit a 16 GB card unless R is large; raise
# the share for big R. benchmarks/gpu_check.py on an H200: 8 quick trials at 0.25 ran
# 553 trials/hour with 29 % mean SM use (README, GPU table).
GPU_SHARE = 0.25


def check_gpu_share(gpus_per_trial: float) -> None:
    """A trial trains on one device: a share of one GPU, or none. More would be reserved and
    left idle (the trial cannot use a second GPU), so it is refused with the fix."""
    if not 0 <= gpus_per_trial <= 1:
        raise RevstudyError(
            f"--gpus-per-trial {gpus_per_trial:g}: a trial trains on one GPU, so use a share "
            "in (0, 1] (several trials then share a GPU) or 0 for CPU-only trials"
        )


def default_gpu_share(address: str | None, cluster_gpus: float) -> float:
    """A trial's GPU share when `--gpus-per-trial` is not given: `GPU_SHARE` where the
    cluster has GPUs, else 0 (CPU trials). A cluster (`--address`) without GPUs at launch may
    get GPU workers from its autoscaler later; its trials would still train on CPUs, so the
    user is told how to make them wait for GPUs instead."""
    if cluster_gpus > 0:
        return GPU_SHARE
    if address:
        print(
            "note: the cluster has no GPU now, so every trial of this study trains on CPUs; "
            f"--gpus-per-trial {GPU_SHARE:g} makes trials wait for GPU workers",
            file=sys.stderr,
        )
    return 0.0


def trial_device(gpus_per_trial: float) -> Device:
    """The device of a trial that reserved `gpus_per_trial` GPUs: the GPU when it reserved a
    share of one, else the CPU (even where the worker could see a GPU)."""
    check_gpu_share(gpus_per_trial)
    return "cuda" if gpus_per_trial > 0 else "cpu"


def check_assigned(device: Device, gpu_ids: Sequence[Any], cuda_available: bool) -> None:
    """Refuse, in one line, a worker whose assigned GPUs contradict the trial's device:
    `gpu_ids` is `ray.get_gpu_ids()` in the worker."""
    if device == "cuda" and not gpu_ids:
        raise RevstudyError(
            "the trial reserved a GPU share but Ray assigned its worker no GPU; "
            "check the cluster's GPU resources (`ray status`)"
        )
    if device == "cuda" and not cuda_available:
        raise RevstudyError(
            f"Ray assigned GPU(s) {list(gpu_ids)} to the trial but torch in its worker sees no "
            "CUDA device: install a CUDA build of torch on the GPU nodes"
        )
    if device == "cpu" and gpu_ids:
        raise RevstudyError(
            f"the trial reserved no GPU but Ray assigned its worker GPU(s) {list(gpu_ids)}; "
            "the study's --gpus-per-trial and the trial's resources disagree"
        )


def cap_memory(device: Device, share: float) -> float | None:
    """Cap this process's caching allocator at `share` of the GPU's memory (shares below one
    only); the cap in GiB, or None where there is none."""
    if device != "cuda" or not 0 < share < 1:
        return None
    import torch

    torch.cuda.set_per_process_memory_fraction(share)
    total: int = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    return share * total / 2**30


def release_memory(device: Device) -> None:
    """Hand a finished trial's cached GPU memory back (Ray reuses the worker process)."""
    gc.collect()
    if device != "cuda":
        return
    import torch

    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def oom_message(share: float, cap_gib: float | None, repeats: int) -> str:
    """What an out-of-memory trial says: its share, the cap, and what to change."""
    cap = f" (capped at {cap_gib:.1f} GiB)" if cap_gib is not None else ""
    return (
        f"out of GPU memory at a {share:g} GPU share per trial{cap} with {repeats} repeat(s): "
        "raise --gpus-per-trial (fewer trials share a GPU) or lower --repeats"
    )
