from __future__ import annotations

import pytest
import torch
from torch import nn

from revstudy.config import TrialConfig
from revstudy.model import (
    InvertibleNet,
    RevBlock,
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
