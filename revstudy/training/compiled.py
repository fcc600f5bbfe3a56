"""The training step compiled with `torch.compile` (`TrialConfig.compile_step`, opt-in).

A GPU step of this network is launch-bound (~2,000 kernel launches for < 1 ms of
arithmetic), so what can pay is fewer launches: CUDA graphs (`reduce-overhead`: Inductor's
kernels replayed as graphs; `cudagraphs`: the eager kernels captured as graphs, with no
code generation) or Inductor's fused kernels (`inductor`). `eager` runs the step through
Dynamo without compiling it: a check of the compiled path (the CPU tests use it).
Measured (benchmarks/compile_step.py, benchmarks/README.md): `reduce-overhead` made a
steady paper epoch 2.35× faster on an H200 after 115 s of compilation; on 2 CPU cores
`inductor` compiled for 160 s for no gain. So the default is `off`, and the option is for
long runs on a GPU (a retrain of many epochs) where the compilation pays; `cudagraphs` is
not measured yet.

Only the training step is compiled: evaluation keeps outputs across calls, which the next
replay of a CUDA graph would overwrite, so it runs the model eagerly. Members stepped as
one vmapped ensemble (a pack's trials, fused repeats) compile the ensemble's vmapped
forward and inverse instead (`revstudy.training.fused.FusedRepeats`): one graph for all
members, so CUDA graphs replay a whole pack's step; it is specialised to the number of
members and compiled again when members leave. Not measured on a GPU yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from revstudy.errors import ConfigError
from revstudy.training.model import InvertibleNet

__all__ = ["compile_model", "training_only"]

GRAPH_MODES = ("reduce-overhead", "cudagraphs")  # CUDA graphs: a CUDA device only


def compile_model(model: InvertibleNet, mode: str, device: torch.device) -> None:
    """Compile `model`'s forward and inverse for training (`mode`: TrialConfig.compile_step;
    "off" leaves it eager). The compiled callables are instance attributes: the weights,
    `state_dict` and checkpoints are the eager model's."""
    if mode == "off":
        return
    if mode in GRAPH_MODES and device.type != "cuda":
        raise ConfigError(
            f"field compile_step: {mode!r} records CUDA graphs and needs a CUDA device "
            f"(this run is on {device.type}); use 'inductor', 'eager' or 'off'"
        )
    # the instance attributes shadow the methods: the Trainer's step calls these
    model.forward = training_only(model.forward, mode, step_begins=True)  # type: ignore[method-assign]
    model.inverse = training_only(model.inverse, mode, step_begins=False)  # type: ignore[method-assign]


def training_only(fn: Callable[..., Any], mode: str, step_begins: bool) -> Callable[..., Any]:
    """`fn` compiled where a backward follows (grad enabled), eager otherwise (`mode`: a
    `compile_step` value, or any `torch.compile` mode). Each training step starts a new
    CUDA-graph step at its forward, as torch asks when a compiled function runs more than
    once before a backward."""
    if mode == "eager":
        compiled_fn = torch.compile(fn, backend="eager", dynamic=False)
    elif mode == "cudagraphs":
        compiled_fn = torch.compile(fn, backend="cudagraphs", dynamic=False)
    elif mode == "inductor":
        compiled_fn = torch.compile(fn, dynamic=False)
    else:
        compiled_fn = torch.compile(fn, mode=mode, dynamic=False)
    graphs = mode in GRAPH_MODES

    def call(*args: Any) -> Any:
        if not torch.is_grad_enabled():
            return fn(*args)
        if graphs and step_begins:
            torch.compiler.cudagraph_mark_step_begin()
        return compiled_fn(*args)

    return call
