"""One repeat's split of the data as tensors on the training device (train, validation,
held-out test), with the 128-bit codes every F1 at the paper's resolution needs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from revstudy.data.dataset import Dataset, Split, coarsen, encode_structures, make_split
from revstudy.data.numbering import in_order, molecule_keys
from revstudy.training.config import TrialConfig
from revstudy.training.resolution import PAPER_Y_DIM

__all__ = ["SplitTensors", "config_split"]


def config_split(
    structures: tuple[str, ...] | list[str], config: TrialConfig, repeat: int
) -> Split:
    """Repeat `repeat`'s split of a data file's `structures` under `config`, grouped by
    molecule (`revstudy.data.numbering.molecule_keys`): the one every run, evaluation and
    benchmark rebuilds."""
    return make_split(
        molecule_keys(structures),
        seed=config.seed + repeat,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        test_seed=config.test_seed,
    )


@dataclass(frozen=True)
class SplitTensors:
    """One split's tensors on the training device: structures and y_dim-bit codes."""

    split: Split
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    # 128-bit codes (the paper's resolution) of train / val / test, for F1 at any y_dim
    y128: dict[str, torch.Tensor] = field(default_factory=dict)
    atom_order: str = "source"  # the numbering x_* are in (revstudy.data.numbering)

    @classmethod
    def build(
        cls,
        dataset: Dataset,
        config: TrialConfig,
        repeat: int = 0,
        device: str = "cpu",
        final: bool = False,
    ) -> SplitTensors:
        """Split with seed `config.seed + repeat` (a molecule's rows on one side, whatever
        numbering each row uses); structures in `config.atom_order`; `final` trains on
        train + validation."""
        split = config_split(dataset.structures, config, repeat)
        x = torch.from_numpy(
            encode_structures(in_order(dataset.structures, config.atom_order, dataset.path))
        )
        y = torch.from_numpy(coarsen(dataset.y(), config.y_dim))
        train = np.concatenate([split.train, split.val]) if final else split.train

        def take(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            t = torch.from_numpy(np.sort(idx))
            return x[t].to(device), y[t].to(device)

        xt, yt = take(train)
        xv, yv = take(split.val)
        xs, ys = take(split.test)
        y128 = torch.from_numpy(coarsen(dataset.y(), PAPER_Y_DIM))
        fine = {
            name: y128[torch.from_numpy(np.sort(idx))]
            for name, idx in (("train", train), ("val", split.val), ("test", split.test))
        }
        return cls(split, xt, yt, xv, yv, xs, ys, fine, config.atom_order)
