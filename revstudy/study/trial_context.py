"""What every trial of a study shares, as one frozen object: built once by the driver from
study.json, bound into Ray's trainable, and handed whole to the trial.

Light (no torch): the driver builds it without loading torch; the worker unpacks it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revstudy.data.dataset import Dataset
from revstudy.study.spaces import SearchSpace
from revstudy.studyinfo import StudyInfo

__all__ = ["TrialContext"]


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a study shares: built once by the driver (`of_study`), bound
    into Ray's trainable, and handed whole to `run_trial` and `train_trial`."""

    study: Path  # the study folder: trials write under trials/<id>/
    space: SearchSpace  # turns a trial's sampled parameters into a TrialConfig
    dataset: Dataset  # the study's data file, read once by the driver
    repeats: int  # seeded train/val splits per trial
    seed: int  # the study seed: repeat r trains with seed + r
    objectives: tuple[str, ...]  # metric names, reported every epoch where known
    threads: int = 1  # torch threads of the trial (its reserved CPUs); 0: torch's default
    driver: dict[str, Any] | None = None  # {"pid", "host"}: a worker outliving it stops
    gpu_share: float = 0.0  # the GPU share a trial reserves; 0: it trains on the CPU
    fuse: bool = True  # repeats side by side (`Repeats`); False: one by one
    strategy: str | None = None  # how repeats train together; None: `repeat_strategy`'s choice
    validate_epochs: tuple[int, ...] = ()  # validated whatever `val_every` says (ASHA's rungs)

    @classmethod
    def of_study(
        cls,
        study: Path,
        info: StudyInfo,
        space: SearchSpace,
        dataset: Dataset,
        validate_epochs: tuple[int, ...] = (),
    ) -> TrialContext:
        """The context of `study`'s trials, from its study.json and this driver
        (`validate_epochs`: the epochs its scheduler compares trials at)."""
        return cls(
            study=study,
            space=space,
            dataset=dataset,
            repeats=info.repeats,
            seed=info.seed,
            objectives=tuple(info.metrics),
            threads=max(1, int(info.cpus_per_trial)),
            driver={"pid": os.getpid(), "host": os.uname().nodename},
            gpu_share=info.gpus_per_trial,
            validate_epochs=validate_epochs,
        )
