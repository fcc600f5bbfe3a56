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
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["fp32_precision", "set_fp32_precision"]


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
