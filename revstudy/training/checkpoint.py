"""Training checkpoints written atomically and read without unpickling code.

Study and model folders are shared between people, so a checkpoint is untrusted input:
`torch.load(weights_only=True)` accepts tensors and plain containers only, and a crafted
file is refused instead of run. Every tensor is mapped to the CPU first and moved by its
owner afterwards: a state saved on a GPU loaded straight onto `cuda` would carry the CPU
random generator's state to the GPU, where `Generator.set_state` rejects it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from revstudy.errors import RevstudyError

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]


class CheckpointError(RevstudyError):
    """A checkpoint file is damaged, foreign or holds something other than tensors."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Temp file + fsync + rename: a kill at any moment leaves the old or the new file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The state saved by `save_checkpoint`, every tensor on the CPU; one-line error otherwise."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as e:  # truncated zip, foreign pickle, a global weights_only refuses
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(
            f"{path}: damaged or untrusted checkpoint, not loaded ({type(e).__name__}: {first})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict of training state, got {type(state)}")
    return state
