"""Float32 precision of CUDA kernels: full IEEE fp32 unless a config asks for TF32.

cuDNN convolutions default to TF32 (a 10-bit mantissa) on Ampere and later GPUs. Round-off
in every coupling block's sub-network is then amplified through the inverse pass: on an H200
the paper configuration's inversion error was 2e-4 with TF32 and 1.2e-6 without (as on CPU),
and the fp32 run was not slower. So every process that computes on CUDA (the CLI, each Ray
trial worker, inference on a saved model) calls `set_fp32_precision` before its first kernel;
`Trainer` and `load_model` do it, so no entry point can forget. On CPU the flags change
nothing.

Only PyTorch's `fp32_precision` API is used: torch >= 2.9 raises when the legacy
`allow_tf32` flags and the new API are mixed in one process.

`set_determinism` is the other numerics switch of a process: cuDNN picks the fastest
convolution algorithm per shape, some of them non-deterministic (atomic adds), and cuBLAS
needs a fixed workspace to repeat a matmul bit for bit. A config with `deterministic: true`
asks for deterministic algorithms everywhere; without it a GPU run is reproducible only up
to round-off (README, "Reproducibility").
"""

from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["fp32_precision", "set_determinism", "set_fp32_precision"]


def set_fp32_precision(allow_tf32: bool = False) -> None:
    """Full fp32 (`"ieee"`) for cuBLAS matmuls and cuDNN convolutions, or TF32 when allowed."""
    mode = "tf32" if allow_tf32 else "ieee"
    cudnn: Any = torch.backends.cudnn  # `conv`/`rnn` are set up at runtime: untyped
    torch.backends.cuda.matmul.fp32_precision = mode
    cudnn.fp32_precision = mode
    cudnn.conv.fp32_precision = mode
    cudnn.rnn.fp32_precision = mode


def fp32_precision() -> dict[str, str]:
    """The modes in force (for records and tests): `ieee` is full fp32, `tf32` is reduced."""
    return {
        "cuda.matmul": str(torch.backends.cuda.matmul.fp32_precision),
        "cudnn.conv": str(getattr(torch.backends.cudnn, "conv").fp32_precision),  # noqa: B009
    }


# cuBLAS repeats a matmul bit for bit only with a fixed workspace; it reads this variable
# when a process's first handle is made, so it is set by every process that trains, whatever
# its first trial asks for (the value is the documented deterministic one; its size is what
# recent CUDA versions use anyway)
CUBLAS_WORKSPACE = ":4096:8"


def set_determinism(deterministic: bool = False) -> None:
    """Deterministic CUDA algorithms on or off for this process (Ray reuses a worker process
    between trials, so every trial sets it, off included)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False  # benchmark mode may choose differently per run
