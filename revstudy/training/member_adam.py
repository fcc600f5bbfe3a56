"""Adam over stacked [R, ...] parameters, each of the R members with its own learning rate
and weight decay: what a pack of trials with different learning settings needs
(`revstudy.training.fused`), where `torch.optim.Adam` takes one rate per tensor.

The update is `torch.optim.Adam`'s (L2 weight decay added to the gradient, bias-corrected
moments, `eps` outside the square root), elementwise, so member r follows a lone Adam with
its own settings up to float rounding; it runs as a few `torch._foreach_*` operations over
all parameters per step, with the per-member numbers broadcast from [R, 1, …, 1] views.
`state_dict()` has `torch.optim.Adam`'s layout (per parameter `step`, `exp_avg`,
`exp_avg_sq`), so the ensemble's checkpoints slice into lone trials' checkpoints as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["MemberAdam"]


class MemberAdam:
    """Adam with an [R] learning rate and weight decay over [R, ...] parameters."""

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        lr: torch.Tensor,
        weight_decay: torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.params = list(params)
        self.lr = lr
        self.betas, self.eps = betas, eps
        self.step_count = 0
        self.exp_avg: list[torch.Tensor] = []
        self.exp_avg_sq: list[torch.Tensor] = []
        self._ranks = [p.dim() for p in self.params]
        self._wd = _columns(weight_decay, self._ranks)  # [R, 1, …, 1] per parameter
        self._decay = bool((weight_decay != 0).any())

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        params = self.params
        grads_t = [p.grad for p in params if p.grad is not None]
        if len(grads_t) != len(params):
            raise RuntimeError("MemberAdam: every stacked parameter needs a gradient")
        if not self.exp_avg:
            self.exp_avg = [torch.zeros_like(p) for p in params]
            self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        beta1, beta2 = self.betas
        self.step_count += 1
        if self._decay:  # L2 decay in the gradient, as torch.optim.Adam (not AdamW)
            grads_t = list(torch._foreach_add(grads_t, torch._foreach_mul(params, self._wd)))
        torch._foreach_lerp_(self.exp_avg, grads_t, 1 - beta1)
        torch._foreach_mul_(self.exp_avg_sq, beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads_t, grads_t, 1 - beta2)
        bias1 = 1 - beta1**self.step_count
        bias2_sqrt = (1 - beta2**self.step_count) ** 0.5
        denom = list(torch._foreach_sqrt(self.exp_avg_sq))
        torch._foreach_div_(denom, bias2_sqrt)
        torch._foreach_add_(denom, self.eps)
        steps = list(torch._foreach_div(self.exp_avg, denom))
        torch._foreach_mul_(steps, _columns(self.lr / -bias1, self._ranks))
        torch._foreach_add_(params, steps)

    # -- torch.optim.Adam's state layout --------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """{"state": {i: {step, exp_avg, exp_avg_sq}}, "param_groups": [...]}, as Adam's."""
        state: dict[int, dict[str, Any]] = {}
        if self.exp_avg:
            for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq, strict=True)):
                step = torch.tensor(float(self.step_count))
                state[i] = {"step": step, "exp_avg": m, "exp_avg_sq": v}
        group = {"params": list(range(len(self.params))), "betas": self.betas, "eps": self.eps}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, doc: dict[str, Any]) -> None:
        """Moments and step count from Adam's layout, stacked [R, ...] per parameter."""
        state = doc["state"]
        if not state:
            return
        entries = [state[i] for i in range(len(self.params))]
        steps = {float(e["step"]) for e in entries}
        if len(steps) != 1:
            raise ValueError("MemberAdam: the parameters' step counts differ")
        self.step_count = int(steps.pop())
        self.exp_avg = [e["exp_avg"].to(p) for e, p in zip(entries, self.params, strict=True)]
        self.exp_avg_sq = [e["exp_avg_sq"].to(p) for e, p in zip(entries, self.params, strict=True)]


def _columns(values: torch.Tensor, ranks: Sequence[int]) -> list[torch.Tensor]:
    """[R] → one [R, 1, …, 1] view per parameter rank, to broadcast against [R, ...]."""
    views = {r: values.reshape((-1,) + (1,) * (r - 1)) for r in set(ranks)}
    return [views[r] for r in ranks]
