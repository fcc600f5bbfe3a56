"""MemberAdam: each member of a stacked parameter gets torch.optim.Adam's update with its
own learning rate and weight decay."""

from __future__ import annotations

import pytest
import torch

from revstudy.training.member_adam import MemberAdam
from tests.training.float64 import default_float64

LR = [1e-3, 3e-3, 2e-4]
DECAY = [0.0, 1e-2, 1e-4]


def _stacks(gen: torch.Generator) -> list[torch.Tensor]:
    return [
        torch.randn((3, 4, 2, 3, 3), generator=gen).requires_grad_(),
        torch.randn((3, 5), generator=gen).requires_grad_(),
    ]


def test_each_member_follows_a_lone_adam_with_its_own_settings() -> None:
    with default_float64():
        gen = torch.Generator().manual_seed(0)
        stacked = _stacks(gen)
        lone = [[p[r].detach().clone().requires_grad_() for p in stacked] for r in range(3)]
        opt = MemberAdam(stacked, torch.tensor(LR), torch.tensor(DECAY))
        lone_opts = [
            torch.optim.Adam(ps, lr=LR[r], weight_decay=DECAY[r], foreach=False)
            for r, ps in enumerate(lone)
        ]
        for _ in range(5):
            grads = [torch.randn(p.shape, generator=gen) for p in stacked]
            for p, g in zip(stacked, grads, strict=True):
                p.grad = g.clone()
            opt.step()
            for r in range(3):
                for p, g in zip(lone[r], grads, strict=True):
                    p.grad = g[r].clone()
                lone_opts[r].step()
        for r in range(3):
            for p, q in zip(stacked, lone[r], strict=True):
                torch.testing.assert_close(p[r], q, rtol=0, atol=1e-14)
        # the moments in Adam's layout: member r's slice is the lone Adam's state
        state = opt.state_dict()["state"]
        for r in range(3):
            own = lone_opts[r].state_dict()["state"]
            for i in range(2):
                assert float(state[i]["step"]) == float(own[i]["step"]) == 5.0
                torch.testing.assert_close(state[i]["exp_avg"][r], own[i]["exp_avg"])
                torch.testing.assert_close(state[i]["exp_avg_sq"][r], own[i]["exp_avg_sq"])


def test_its_state_round_trips_and_a_missing_gradient_is_refused() -> None:
    gen = torch.Generator().manual_seed(1)
    stacked = _stacks(gen)
    opt = MemberAdam(stacked, torch.tensor(LR), torch.tensor(DECAY))
    for p in stacked:
        p.grad = torch.ones_like(p)
    opt.step()
    again = MemberAdam(stacked, torch.tensor(LR), torch.tensor(DECAY))
    again.load_state_dict(opt.state_dict())
    assert again.step_count == 1
    assert all(torch.equal(a, b) for a, b in zip(again.exp_avg, opt.exp_avg, strict=True))
    stacked[1].grad = None
    with pytest.raises(RuntimeError, match="needs a gradient"):
        opt.step()
