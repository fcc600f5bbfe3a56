from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from revstudy.training.config import TrialConfig
from revstudy.training.losses import (
    latent_loss,
    mmd_loss,
    moment_loss,
    nearest_positive_distance,
    spectrum_loss,
    spectrum_weights,
    structure_terms,
    x_weight,
)


def test_nearest_distance_matches_brute_force() -> None:
    torch.manual_seed(0)
    t = (torch.rand(20, 64) < 0.08).float()
    t[0] = 0
    got = nearest_positive_distance(t)
    for b in range(20):
        pos = torch.nonzero(t[b]).flatten()
        for i in range(64):
            want = 1.0 if len(pos) == 0 else float((pos - i).abs().min())
            assert got[b, i] == want


def test_spectrum_loss_hand_checked() -> None:
    # one sample, 4 bits, true bit at position 1: distances 1,0,1,2 → weights 1/2,1,1/2,1/3
    logits = torch.tensor([[0.0, 2.0, -1.0, 0.5]])
    target = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    w = torch.tensor([0.5, 1.0, 0.5, 1 / 3])
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")[0]
    want = float((bce * w).mean() + 1e-3 * (logits**2).mean())
    assert spectrum_loss(logits, target, 1e-3).item() == pytest.approx(want, rel=1e-6)
    # reference weighting: a near miss costs MORE than a far one (weight 1/(1+d) falls)
    zero = torch.zeros(1, 4)
    near = spectrum_loss(zero + torch.tensor([[0, 0, 3.0, 0]]), target, 0.0)
    far = spectrum_loss(zero + torch.tensor([[0, 0, 0, 3.0]]), target, 0.0)
    assert near > far


def test_near_miss_weighting_makes_near_misses_cheaper() -> None:
    """The issue's example, 0100 true: predicting 0010 must cost less than 0001 (paper)."""
    target = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    w = spectrum_weights(target, "near_miss")[0]
    assert w.tolist() == pytest.approx([0.5, 1.0, 0.5, 2 / 3])
    on, off = 6.0, -6.0  # confident logits
    pred = {name: torch.tensor([bits]) * (on - off) + off for name, bits in {
        "0010": [0.0, 0.0, 1.0, 0.0], "0001": [0.0, 0.0, 0.0, 1.0],
        "0100": [0.0, 1.0, 0.0, 0.0],
    }.items()}  # fmt: skip
    cost = {k: spectrum_loss(v, target, 0.0, "near_miss").item() for k, v in pred.items()}
    assert cost["0100"] < cost["0010"] < cost["0001"]
    ref = {k: spectrum_loss(v, target, 0.0, "reference").item() for k, v in pred.items()}
    assert ref["0010"] > ref["0001"]  # the reference's opposite order, kept as an option
    with pytest.raises(ValueError, match="near_miss"):
        spectrum_weights(target, "bogus")
    assert TrialConfig.from_dict({"spectrum_weighting": "near_miss"}).spectrum_weighting


def test_structure_terms_hand_checked() -> None:
    c = TrialConfig(lambda_x=1.0, lambda_sparse=1.0, lambda_density=1.0, alpha=8.0)
    x_gen = torch.full((1, 4, 16, 16), 0.5)
    x_real = torch.zeros(1, 4, 16, 16)
    x_real.view(-1)[:64] = 1.0  # density 64/1024
    t = structure_terms(x_gen, x_real, c)
    assert t.x_range.item() == pytest.approx(0.25)
    assert t.sparsity.item() == pytest.approx(0.5)
    # sigmoid(8·(0.5−0.5)) = 0.5 everywhere
    assert t.density.item() == pytest.approx((0.5 - 64 / 1024) ** 2)
    raw = structure_terms(x_gen, x_real, c.replace(density_soft=False))
    assert raw.density.item() == pytest.approx((0.5 - 64 / 1024) ** 2)
    zero_centre = structure_terms(x_gen, x_real, c.replace(density_centre=0.0))
    assert zero_centre.density.item() == pytest.approx((1 / (1 + math.exp(-4)) - 1 / 16) ** 2)


def test_warmup() -> None:
    assert x_weight(1, 10) == 0.1 and x_weight(5, 10) == 0.5 and x_weight(20, 10) == 1.0
    assert x_weight(1, 0) == 1.0 and x_weight(2, 2) == 1.0


def test_latent_losses_prefer_standard_normal() -> None:
    g = torch.Generator().manual_seed(0)
    normal = torch.randn(256, 32, generator=g)
    shifted = normal * 0.5 + 1.0
    assert moment_loss(normal) < 0.05 < moment_loss(shifted)
    assert mmd_loss(normal, g) < mmd_loss(shifted, g)
    off = TrialConfig()
    assert latent_loss(shifted, off).item() == 0.0
    on = TrialConfig(latent_loss="moments", latent_weight=2.0)
    assert latent_loss(shifted, on).item() == pytest.approx(2 * moment_loss(shifted).item())
