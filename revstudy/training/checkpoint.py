"""Training checkpoints written atomically and read without unpickling code.

Study and model folders are shared between people, so a checkpoint is untrusted input:
`torch.load(weights_only=True)` accepts tensors and plain containers only, and a crafted
file is refused instead of run. Every tensor is mapped to the CPU first and moved by its
owner afterwards: a state saved on a GPU loaded straight onto `cuda` would carry the CPU
random generator's state to the GPU, where `Generator.set_state` rejects it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from revstudy.errors import RevstudyError
from revstudy.files import UnsafeFileError, check_inflation, regular_file, replaced_atomically

__all__ = [
    "ARCHIVE_LIMIT",
    "CheckpointError",
    "check_archive",
    "load_checkpoint",
    "save_checkpoint",
    "to_host",
]


class CheckpointError(RevstudyError):
    """A checkpoint file is damaged, foreign or holds something other than tensors."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Temp file + fsync + rename: a kill at any moment leaves the old or the new file whole.
    Tensors on a device are copied to the host first, in a few large transfers (`to_host`)."""
    state = to_host(state)
    with replaced_atomically(path) as tmp, tmp.open("wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())


# The most a checkpoint or model file may hold, inflated: a paper-model trial with R = 10
# fused repeats checkpoints ~1.5 GB (weights and Adam moments); far above it is a bomb
ARCHIVE_LIMIT = 8 * 2**30


def check_archive(path: Path, limit: int | None = None) -> None:
    """Refuse, before `torch.load` inflates anything, a file that is not a regular one (a
    link, FIFO, device) or whose zip entries would inflate past `limit` bytes (a zip bomb).
    torch's own files are zips of stored entries. `limit`: default `ARCHIVE_LIMIT`."""
    limit = ARCHIVE_LIMIT if limit is None else limit
    regular_file(path, limit)
    check_inflation(path, limit, "a checkpoint or model")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The state saved by `save_checkpoint`, every tensor on the CPU; one-line error otherwise."""
    try:
        check_archive(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except UnsafeFileError as e:
        raise CheckpointError(str(e)) from None
    except Exception as e:  # truncated zip, foreign pickle, a global weights_only refuses
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(
            f"{path}: damaged or untrusted checkpoint, not loaded ({type(e).__name__}: {first})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict of training state, got {type(state)}")
    return state


# bytes per host transfer: large enough that ~7,000 small tensors (R = 10 repeats' weights and
# Adam moments) go in a handful of copies, small enough that the staging buffer on the device
# stays a fraction of a shared GPU's memory
TRANSFER_BYTES = 256 * 2**20


def to_host(state: Any, on_device: Callable[[torch.Tensor], bool] | None = None) -> Any:
    """`state` (nested dicts, lists, tuples) with every tensor on a device copied to the host.

    `torch.save` of device tensors copies each one to the host by itself (thousands of small
    synchronous copies for a fused trial); here tensors of one dtype are packed on the device
    into buffers of up to `TRANSFER_BYTES` and each buffer crosses once. CPU tensors are
    left as they are. `on_device` decides what counts as a device tensor (tests pass CPU
    tensors through the packing path with it)."""
    is_device = on_device or (lambda t: t.device.type != "cpu")
    found: dict[int, torch.Tensor] = {}

    def collect(obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            if is_device(obj):
                found[id(obj)] = obj
        elif isinstance(obj, dict):
            for v in obj.values():
                collect(v)
        elif isinstance(obj, list | tuple):
            for v in obj:
                collect(v)

    collect(state)
    host = _copy_packed(list(found.values()))

    def rebuild(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return host.get(id(obj), obj)
        if isinstance(obj, dict):
            return {k: rebuild(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [rebuild(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(rebuild(v) for v in obj)
        return obj

    return rebuild(state)


def _copy_packed(tensors: list[torch.Tensor]) -> dict[int, torch.Tensor]:
    """id(tensor) → its host copy; one transfer per dtype and `TRANSFER_BYTES` chunk."""
    out: dict[int, torch.Tensor] = {}
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        chunks: list[list[torch.Tensor]] = [[]]
        size = 0
        for t in group:
            nbytes = t.numel() * t.element_size()
            if chunks[-1] and size + nbytes > TRANSFER_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(t)
            size += nbytes
        for chunk in chunks:
            flat = torch.cat([c.detach().reshape(-1) for c in chunk]).cpu()
            for c, piece in zip(chunk, flat.split([c.numel() for c in chunk]), strict=True):
                out[id(c)] = piece.view(c.shape)
    return out
