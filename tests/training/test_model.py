from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from revstudy.training.config import TrialConfig
from revstudy.training.model import (
    Flatten,
    InvertibleNet,
    RevBlock,
    Squeeze,
    conv_subnet,
    count_parameters,
    fast_subnet,
    squeeze,
    unsqueeze,
)

SMALL = TrialConfig(blocks=(1, 1, 1, 1, 2), hidden_ratio=0.5)


def test_squeeze_round_trip_and_shape() -> None:
    x = torch.randn(3, 4, 16, 16)
    s = squeeze(x)
    assert s.shape == (3, 16, 8, 8)
    assert torch.equal(unsqueeze(s), x)
    # each 2x2 patch becomes 4 channels of one position
    assert s[0, :4, 0, 0].tolist() == [x[0, 0, 0, 0], x[0, 0, 0, 1], x[0, 0, 1, 0], x[0, 0, 1, 1]]


@pytest.mark.parametrize("paper", [False, True])
def test_exact_inversion(paper: bool) -> None:
    torch.manual_seed(0)
    model = InvertibleNet.from_config(SMALL.replace(paper_parameterisation=paper)).eval()
    x = (torch.rand(16, 4, 16, 16) < 0.05).float()
    with torch.no_grad():
        z, y = model(x)
        assert z.shape == (16, 896) and y.shape == (16, 128)
        assert (model.inverse(z, y) - x).abs().max() < 1e-5
        # and the other way: any latent maps back to itself
        z2, y2 = torch.randn(4, 896), torch.randn(4, 128)
        zz, yy = model(model.inverse(z2, y2))
        assert (zz - z2).abs().max() < 1e-3 and (yy - y2).abs().max() < 1e-3


def test_y_dim_split() -> None:
    model = InvertibleNet.from_config(SMALL.replace(y_dim=32))
    z, y = model(torch.zeros(2, 4, 16, 16))
    assert z.shape == (2, 992) and y.shape == (2, 32)


def test_paper_parameter_count() -> None:
    assert count_parameters(
        InvertibleNet.from_config(TrialConfig(paper_parameterisation=True))
    ) == (79_208_816)
    fast = count_parameters(InvertibleNet.from_config(TrialConfig()))
    assert fast < 79_208_816 / 6  # the 1×1 stage holds almost all of the paper's parameters


def test_linear_last_stage_is_the_centre_tap_of_the_paper_conv() -> None:
    """On a 1×1 map a padded 3×3 conv equals a linear layer with its centre weights."""
    torch.manual_seed(0)
    conv = conv_subnet(3)(8, 6, 1)
    lin = fast_subnet(3)(8, 6, 1)
    with torch.no_grad():
        for c, ln in ((conv[0], lin[0]), (conv[2], lin[2])):
            assert isinstance(c, nn.Conv2d) and isinstance(ln, nn.Linear)
            ln.weight.copy_(c.weight[:, :, 1, 1])
            ln.bias.copy_(c.bias)
    x = torch.randn(5, 8)
    assert torch.allclose(conv(x[:, :, None, None])[:, :, 0, 0], lin(x), atol=1e-6)


def test_fast_init_matches_paper_fan_in() -> None:
    lin = fast_subnet(3)(512, 512, 1)[0]
    assert isinstance(lin, nn.Linear)
    assert lin.weight.abs().max() <= 1 / (512 * 9) ** 0.5 + 1e-7


def test_rev_block_inverse() -> None:
    block = RevBlock(16, 4, conv_subnet())
    x = torch.randn(2, 16, 4, 4)
    assert torch.allclose(block.inverse(block(x)), x, atol=1e-6)


def test_shape_errors_are_actionable() -> None:
    model = InvertibleNet.from_config(SMALL)
    with pytest.raises(ValueError, match=r"\[B, 4, 16, 16\]"):
        model(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match="z_free must be"):
        model.inverse(torch.zeros(2, 10), torch.zeros(2, 128))
    with pytest.raises(ValueError, match="batch sizes differ"):
        model.inverse(torch.zeros(2, 896), torch.zeros(3, 128))


@pytest.mark.parametrize("paper", [False, True])
def test_steps_inverse_is_the_reversed_list(paper: bool) -> None:
    """forward is the steps in order, inverse their inverses in reverse: an exact round trip."""
    torch.manual_seed(0)
    model = InvertibleNet.from_config(SMALL.replace(paper_parameterisation=paper)).eval()
    maps = [RevBlock, Squeeze] * 4
    last = [RevBlock, RevBlock, Flatten] if paper else [Flatten, RevBlock, RevBlock]
    assert [type(step) for step in model.steps] == maps + last
    blocks = [b for stage in model.stages for b in stage]
    assert [s for s in model.steps if isinstance(s, RevBlock)] == blocks  # the same objects
    x = torch.randn(3, 4, 16, 16)
    with torch.no_grad():
        z = x
        for step in model.steps:
            z = step(z)
        assert z.shape == (3, 1024)
        for step in reversed(model.steps):
            z = step.inverse(z)
        assert torch.allclose(z, x, atol=1e-5)
        # every single step inverts exactly on its own input
        z = x
        for step in model.steps:
            out = step(z)
            assert torch.allclose(step.inverse(out), z, atol=1e-5)
            z = out


def test_steps_are_not_registered_and_state_dict_keys_unchanged() -> None:
    model = InvertibleNet.from_config(SMALL)
    keys = list(model.state_dict())
    for key in (
        "stages.0.0.F.0.weight",
        "stages.0.0.G.2.bias",
        "stages.3.0.F.0.weight",
        "stages.4.0.F.0.weight",
        "stages.4.1.G.2.weight",
    ):
        assert key in keys
    assert all(k.startswith("stages.") for k in keys)
    assert len(keys) == 6 * 4 * 2  # 6 blocks × (F, G) × 2 layers × (weight, bias)
    paper = InvertibleNet.from_config(SMALL.replace(paper_parameterisation=True))
    assert list(paper.state_dict()) == keys  # the layout changes no parameter names


def test_deepcopy_keeps_steps_on_the_copied_blocks() -> None:
    model = InvertibleNet.from_config(SMALL)
    clone = copy.deepcopy(model)
    blocks = [b for stage in clone.stages for b in stage]
    assert [s for s in clone.steps if isinstance(s, RevBlock)] == blocks
    assert all(a is not b for a, b in zip(clone.steps, model.steps, strict=True))
    meta = copy.deepcopy(model).to("meta")
    z, y = meta(torch.zeros(2, 4, 16, 16, device="meta"))
    assert z.shape == (2, 896) and y.shape == (2, 128)


def test_conv_subnets_on_the_1x1_stage_need_no_flag() -> None:
    """The layout follows the sub-networks: convolutions get [B, C, 1, 1] maps."""
    torch.manual_seed(0)
    model = InvertibleNet(blocks=(1, 1, 1, 1, 2), subnet_constructor=conv_subnet()).eval()
    assert model.flat_last_stage is False
    assert InvertibleNet(blocks=(1, 1, 1, 1, 2)).flat_last_stage is True  # fast_subnet
    x = torch.randn(2, 4, 16, 16)
    with torch.no_grad():
        z, y = model(x)
        assert torch.allclose(model.inverse(z, y), x, atol=1e-5)
    torch.manual_seed(0)
    explicit = InvertibleNet(
        blocks=(1, 1, 1, 1, 2), subnet_constructor=conv_subnet(), flat_last_stage=False
    )
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), explicit.parameters(), strict=True)
    )


def test_wrong_explicit_pairing_is_refused() -> None:
    with pytest.raises(ValueError, match=r"stage 4 \(1×1 maps\).*\[B, 512\] vectors") as e:
        InvertibleNet(
            blocks=(1, 1, 1, 1, 1), subnet_constructor=conv_subnet(), flat_last_stage=True
        )
    assert "pass flat_last_stage=False" in str(e.value)
    with pytest.raises(ValueError, match=r"stage 4 .*\[B, 512, 1, 1\] maps") as e:
        InvertibleNet(
            blocks=(1, 1, 1, 1, 1), subnet_constructor=fast_subnet(), flat_last_stage=False
        )
    assert "pass flat_last_stage=True" in str(e.value)


def test_subnets_that_change_the_map_size_are_refused() -> None:
    with pytest.raises(ValueError, match=r"stage 0 \(16×16 maps\).*pad k×k convolutions"):
        InvertibleNet(blocks=(1, 1, 1, 1, 1), subnet_constructor=conv_subnet(kernel_size=2))


def test_probing_has_no_side_effects() -> None:
    """Construction probes the sub-networks, but leaves modes, buffers and the RNG alone."""

    def with_norm(c_in: int, c_out: int, spatial: int) -> nn.Module:
        norm = nn.BatchNorm1d(c_in) if spatial == 1 else nn.BatchNorm2d(c_in)
        return nn.Sequential(norm, nn.Dropout(0.5), fast_subnet()(c_in, c_out, spatial))

    model = InvertibleNet(blocks=(1, 1, 1, 1, 1), subnet_constructor=with_norm)
    assert all(m.training for m in model.modules())
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            assert m.num_batches_tracked == 0 and torch.equal(
                m.running_mean, torch.zeros_like(m.running_mean)
            )


class _Noisy(nn.Module):
    """A parameter-free sub-network that draws random numbers on every call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0 * torch.rand_like(x)


def test_probing_leaves_the_rng_alone() -> None:
    """Seeded construction stays reproducible: the probe's random draws are undone."""
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    model = InvertibleNet(blocks=(1, 1, 1, 1, 1), subnet_constructor=lambda i, o, s: _Noisy())
    assert model.flat_last_stage is True
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"paper_parameterisation": True},
        {"blocks": (0, 3, 1, 2, 1), "kernel_size": 5, "hidden_ratio": 0.7},
        {"blocks": (1, 1, 1, 1, 1), "hidden_ratio": 0.25, "y_dim": 64},
        {"paper_parameterisation": True, "kernel_size": 1, "hidden_ratio": 1.3},
    ],
)
def test_param_count_counts_what_the_network_builds(fields: dict) -> None:
    """The driver bounds a trial's size without torch (`config.param_count`)."""
    from revstudy.training.config import param_count

    config = TrialConfig(**fields)
    net = InvertibleNet.from_config(config)
    assert param_count(config) == sum(p.numel() for p in net.parameters())
