"""The i-RevNet-style invertible network: additive coupling blocks and squeeze stages.

A 4×16×16 bond tensor passes five stages (16², 8², 4², 2², 1² maps); each stage holds
`blocks[s]` coupling blocks and all but the last end in a squeeze (4× channels, ½ size).
The 1024 outputs split into `Z_free` (first 1024 − y_dim) and `Y_latent` (last y_dim).

Sub-networks are built by a `subnet_constructor(c_in, c_out, spatial)` (FrEIA style). On
1×1 maps a padded k×k convolution only ever uses its centre tap, so the fast path builds
that stage from `nn.Linear` layers on flat vectors: the same function class with ~9× fewer
parameters. `paper_parameterisation=True` keeps the paper's k×k layers there.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from revstudy.config import TrialConfig

INPUT_SHAPE = (4, 16, 16)
TOTAL_DIM = 4 * 16 * 16
N_STAGES = 5

SubnetConstructor = Callable[[int, int, int], nn.Module]


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] → [B, 4C, H/2, W/2], i-RevNet's invertible space-to-depth."""
    b, c, h, w = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"squeeze needs even spatial size, got {h}x{w}")
    x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c * 4, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `squeeze`: [B, 4C, H, W] → [B, C, 2H, 2W]."""
    b, c, h, w = x.shape
    if c % 4:
        raise ValueError(f"unsqueeze needs channels divisible by 4, got {c}")
    x = x.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c // 4, h * 2, w * 2)


def conv_subnet(kernel_size: int = 3, hidden_ratio: float = 1.0) -> SubnetConstructor:
    """k×k conv → ReLU → k×k conv, the reference sub-network, on every stage."""

    def make(c_in: int, c_out: int, spatial: int) -> nn.Module:
        hidden = max(1, round(hidden_ratio * c_out))
        pad = kernel_size // 2
        return nn.Sequential(
            nn.Conv2d(c_in, hidden, kernel_size, padding=pad),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, c_out, kernel_size, padding=pad),
        )

    return make


def fast_subnet(kernel_size: int = 3, hidden_ratio: float = 1.0) -> SubnetConstructor:
    """Like `conv_subnet`, but 1×1 maps get `nn.Linear` layers on flat [B, C] vectors.

    The linear layers are initialised with the k×k convolution's fan-in, so both
    parameterisations start from the same distribution of functions.
    """
    conv = conv_subnet(kernel_size, hidden_ratio)

    def make(c_in: int, c_out: int, spatial: int) -> nn.Module:
        if spatial > 1:
            return conv(c_in, c_out, spatial)
        hidden = max(1, round(hidden_ratio * c_out))
        layers = [nn.Linear(c_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, c_out)]
        for layer in (layers[0], layers[2]):
            assert isinstance(layer, nn.Linear)
            bound = 1.0 / math.sqrt(layer.in_features * kernel_size * kernel_size)
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.uniform_(layer.bias, -bound, bound)
        return nn.Sequential(*layers)

    return make


class RevBlock(nn.Module):
    """Additive coupling: y2 = x2 + F(x1), y1 = x1 + G(y2); exactly invertible."""

    def __init__(self, channels: int, spatial: int, subnet_constructor: SubnetConstructor):
        super().__init__()
        self.c1 = channels // 2
        self.c2 = channels - self.c1
        self.F = subnet_constructor(self.c1, self.c2, spatial)
        self.G = subnet_constructor(self.c2, self.c1, spatial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.split((self.c1, self.c2), dim=1)
        y2 = x2 + self.F(x1)
        y1 = x1 + self.G(y2)
        return torch.cat((y1, y2), dim=1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        y1, y2 = y.split((self.c1, self.c2), dim=1)
        x1 = y1 - self.G(y2)
        x2 = y2 - self.F(x1)
        return torch.cat((x1, x2), dim=1)


class InvertibleNet(nn.Module):
    """X [B, 4, 16, 16] ⇄ (Z_free [B, 1024 − y_dim], Y_latent [B, y_dim])."""

    def __init__(
        self,
        blocks: tuple[int, ...] = (2, 2, 4, 6, 8),
        y_dim: int = 128,
        subnet_constructor: SubnetConstructor | None = None,
        flat_last_stage: bool = True,
    ):
        super().__init__()
        if len(blocks) != N_STAGES:
            raise ValueError(f"blocks needs {N_STAGES} stage counts (16² … 1² maps), got {blocks}")
        if not 0 < y_dim < TOTAL_DIM:
            raise ValueError(f"y_dim must be in 1..{TOTAL_DIM - 1}, got {y_dim}")
        make = subnet_constructor or fast_subnet()
        self.blocks = tuple(blocks)
        self.y_dim = y_dim
        self.z_dim = TOTAL_DIM - y_dim
        # With a flat last stage, its blocks act on [B, 1024] vectors (no 1×1 conv overhead).
        self.flat_last_stage = flat_last_stage
        self.stages = nn.ModuleList()
        for s, n in enumerate(blocks):
            channels, spatial = 4 * 4**s, 16 >> s
            self.stages.append(nn.ModuleList(RevBlock(channels, spatial, make) for _ in range(n)))

    @classmethod
    def from_config(cls, config: TrialConfig) -> InvertibleNet:
        build = conv_subnet if config.paper_parameterisation else fast_subnet
        return cls(
            blocks=config.blocks,
            y_dim=config.y_dim,
            subnet_constructor=build(config.kernel_size, config.hidden_ratio),
            flat_last_stage=not config.paper_parameterisation,
        )

    def _stage(self, s: int) -> nn.ModuleList:
        stage = self.stages[s]
        assert isinstance(stage, nn.ModuleList)
        return stage

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 4 or tuple(x.shape[1:]) != INPUT_SHAPE:
            raise ValueError(
                f"expected structures of shape [B, 4, 16, 16], got {list(x.shape)}; "
                "encode CSV rows with revstudy.data.encode_structures"
            )
        z = x
        for s in range(N_STAGES):
            stage = self._stage(s)
            last = s == N_STAGES - 1
            if last and self.flat_last_stage:
                z = z.reshape(z.shape[0], TOTAL_DIM)
            for block in stage:
                z = block(z)
            if not last:
                z = squeeze(z)
        z = z.reshape(z.shape[0], TOTAL_DIM)
        return z[:, : self.z_dim], z[:, self.z_dim :]

    def inverse(self, z_free: torch.Tensor, y_latent: torch.Tensor) -> torch.Tensor:
        if z_free.dim() != 2 or z_free.shape[1] != self.z_dim:
            raise ValueError(f"z_free must be [B, {self.z_dim}], got {list(z_free.shape)}")
        if y_latent.dim() != 2 or y_latent.shape[1] != self.y_dim:
            raise ValueError(f"y_latent must be [B, {self.y_dim}], got {list(y_latent.shape)}")
        if z_free.shape[0] != y_latent.shape[0]:
            raise ValueError(
                f"z_free and y_latent batch sizes differ: {z_free.shape[0]} vs {y_latent.shape[0]}"
            )
        z = torch.cat((z_free, y_latent), dim=1)
        if not self.flat_last_stage:
            z = z.reshape(z.shape[0], TOTAL_DIM, 1, 1)
        for s in reversed(range(N_STAGES)):
            last = s == N_STAGES - 1
            if not last:
                z = unsqueeze(z)
            for block in reversed(self._stage(s)):
                assert isinstance(block, RevBlock)
                z = block.inverse(z)
            if last:
                z = z.reshape(z.shape[0], TOTAL_DIM, 1, 1)
        return z


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
