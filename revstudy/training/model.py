"""The i-RevNet-style invertible network: additive coupling blocks and squeeze stages.

A 4×16×16 bond tensor passes five stages (16², 8², 4², 2², 1² maps); each stage holds
`blocks[s]` coupling blocks and all but the last end in a squeeze (4× channels, ½ size).
The 1024 outputs split into `Z_free` (first 1024 − y_dim) and `Y_latent` (last y_dim).
The network is one ordered list of invertible `Step`s (`RevBlock`, `Squeeze`, `Flatten`):
forward applies them in order, inverse applies their inverses in reverse.

Sub-networks are built by a `subnet_constructor(c_in, c_out, spatial)` (FrEIA style). On
1×1 maps a padded k×k convolution only ever uses its centre tap, so the fast path builds
that stage from `nn.Linear` layers on flat vectors: the same function class with ~9× fewer
parameters. `paper_parameterisation=True` keeps the paper's k×k layers there. Whether the
1×1 stage sees [B, C] vectors or [B, C, 1, 1] maps follows from the sub-networks (probed
once on zero inputs at construction), and a wrong explicit pairing is refused there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from revstudy.training.config import TrialConfig

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


class Step(nn.Module):
    """One invertible step of `InvertibleNet`: `forward(x)` and its exact `inverse(y)`.

    The network is nothing but an ordered list of steps, so its inverse is the reversed list
    of inverses and no stage needs special-casing.
    """

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Squeeze(Step):
    """Parameter-free space-to-depth between stages: `squeeze` forward, `unsqueeze` back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return squeeze(x)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return unsqueeze(y)


class Flatten(Step):
    """Parameter-free [B, C, 1, 1] ⇄ [B, C]: where the 1×1 maps become latent vectors."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[2:] != (1, 1):
            raise ValueError(f"Flatten needs [B, C, 1, 1] maps, got {list(x.shape)}")
        return x.reshape(x.shape[0], x.shape[1])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        if y.dim() != 2:
            raise ValueError(f"Flatten.inverse needs [B, C] vectors, got {list(y.shape)}")
        return y.reshape(y.shape[0], y.shape[1], 1, 1)


class RevBlock(Step):
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


def _probe_input(module: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    """Zeros of `shape` on the sub-network's device and floating dtype."""
    ref = next(iter((*module.parameters(), *module.buffers())), None)
    if ref is None:
        return torch.zeros(shape)
    dtype = ref.dtype if ref.is_floating_point() else None
    return torch.zeros(shape, device=ref.device, dtype=dtype)


def _probe(module: nn.Module, c_in: int, c_out: int, spatial: int | None) -> str | None:
    """Why `module` fails to map [B, c_in, s, s] to [B, c_out, s, s] (None when it works).

    `spatial=None` probes flat [B, c_in] → [B, c_out] vectors. One real call on two zero
    inputs (milliseconds; the meta device would import torch._dynamo, ~1 s per process), in
    eval mode, without grad and with the RNG restored: no running-stat or dropout side
    effects, so seeded construction stays reproducible.
    """
    tail = () if spatial is None else (spatial, spatial)
    x = _probe_input(module, (2, c_in, *tail))
    modes = [(m, m.training) for m in module.modules()]
    cuda = [x.device] if x.device.type == "cuda" else []
    try:
        module.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=cuda):
            y = module(x)
    except Exception as e:  # any failure means this layout is not accepted
        first_line = (str(e).strip().splitlines() or [""])[0]
        return f"{type(e).__name__}: {first_line[:200]}"
    finally:
        for m, training in modes:
            m.training = training
    want = (2, c_out, *tail)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != want:
        got = list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        return f"returned {got}, expected {list(want)}"
    return None


def _stage_error(s: int, blocks: Sequence[RevBlock], flat: bool) -> str | None:
    """Why stage `s`'s sub-networks refuse the layout it will feed them (None when fine).

    Only the first block is probed: every block of a stage is built with the same
    arguments, and probing all of the paper's 1×1 convolutions would slow construction.
    """
    spatial = 16 >> s
    tail, kind = ("", "vectors") if flat else (f", {spatial}, {spatial}", "maps")
    for block in blocks[:1]:
        for net, c_in, c_out in ((block.F, block.c1, block.c2), (block.G, block.c2, block.c1)):
            why = _probe(net, c_in, c_out, None if flat else spatial)
            if why is not None:
                return (
                    f"subnet_constructor({c_in}, {c_out}, {spatial}) built a module that does "
                    f"not map [B, {c_in}{tail}] {kind} to [B, {c_out}{tail}] {kind} ({why})"
                )
    return None


def _stage_name(s: int) -> str:
    size = 16 >> s
    return f"stage {s} ({size}×{size} maps)"


def _check_map_stages(stages: Sequence[Sequence[RevBlock]]) -> None:
    """Refuse sub-networks of the 16² … 2² stages that do not keep their map's shape."""
    for s, blocks in enumerate(stages[: N_STAGES - 1]):
        why = _stage_error(s, blocks, flat=False)
        if why is not None:
            raise ValueError(
                f"{_stage_name(s)}: {why}; sub-networks must map [B, C_in, H, W] maps to "
                "[B, C_out, H, W] (pad k×k convolutions by k // 2)"
            )


_FIX = {
    True: "convolutional sub-networks need [B, C, 1, 1] maps: pass flat_last_stage=False",
    False: "nn.Linear sub-networks need [B, C] vectors: pass flat_last_stage=True",
}


def _last_stage_layout(blocks: Sequence[RevBlock], flat_last_stage: bool | None) -> bool:
    """Whether the 1×1 stage runs on flat [B, C] vectors (True) or [B, C, 1, 1] maps.

    The sub-networks decide: an explicit choice is validated, None detects it (flat when
    both work, as before). A wrong pairing would otherwise only fail at the first batch.
    """
    name = _stage_name(N_STAGES - 1)
    if flat_last_stage is not None:
        why = _stage_error(N_STAGES - 1, blocks, flat_last_stage)
        if why is not None:
            raise ValueError(
                f"{name}: {why}; {_FIX[flat_last_stage]} (or None to detect the layout)"
            )
        return flat_last_stage
    flat_why = _stage_error(N_STAGES - 1, blocks, flat=True)
    if flat_why is None:
        return True
    map_why = _stage_error(N_STAGES - 1, blocks, flat=False)
    if map_why is None:
        return False
    raise ValueError(
        f"{name}: sub-networks accept neither [B, C] vectors nor [B, C, 1, 1] maps: "
        f"flat: {flat_why}; maps: {map_why}"
    )


def _build_steps(stages: Sequence[Sequence[RevBlock]], flat_last_stage: bool) -> tuple[Step, ...]:
    """The network as one ordered list: each map stage's blocks then a squeeze, and the 1×1
    stage with a flatten before (flat vectors) or after (maps), so the output is [B, 1024]."""
    *map_stages, last = stages
    steps: list[Step] = []
    for blocks in map_stages:
        steps += [*blocks, Squeeze()]
    steps += [Flatten(), *last] if flat_last_stage else [*last, Flatten()]
    return tuple(steps)


class InvertibleNet(nn.Module):
    """X [B, 4, 16, 16] ⇄ (Z_free [B, 1024 − y_dim], Y_latent [B, y_dim]).

    `self.stages` (ModuleList per stage of `RevBlock`s) holds the parameters, so state_dict
    keys stay `stages.<s>.<b>....`; `self.steps` is a plain tuple (not registered) of those
    same blocks with the parameter-free `Squeeze`/`Flatten` steps in between. `deepcopy`
    keeps the sharing and `functional_call` swaps the blocks' weights in place, so both see
    the steps run with the right parameters. Replacing a block in `stages` after
    construction would leave `steps` stale.
    """

    def __init__(
        self,
        blocks: tuple[int, ...] = (2, 2, 4, 6, 8),
        y_dim: int = 128,
        subnet_constructor: SubnetConstructor | None = None,
        flat_last_stage: bool | None = None,
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
        stages = [
            [RevBlock(4 * 4**s, 16 >> s, make) for _ in range(n)] for s, n in enumerate(blocks)
        ]
        _check_map_stages(stages)
        # A flat last stage acts on [B, 1024] vectors (no 1×1 conv overhead).
        self.flat_last_stage = _last_stage_layout(stages[-1], flat_last_stage)
        self.stages = nn.ModuleList(nn.ModuleList(stage) for stage in stages)
        self.steps: tuple[Step, ...] = _build_steps(stages, self.flat_last_stage)

    @classmethod
    def from_config(cls, config: TrialConfig) -> InvertibleNet:
        build = conv_subnet if config.paper_parameterisation else fast_subnet
        return cls(
            blocks=config.blocks,
            y_dim=config.y_dim,
            subnet_constructor=build(config.kernel_size, config.hidden_ratio),
            flat_last_stage=not config.paper_parameterisation,
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 4 or tuple(x.shape[1:]) != INPUT_SHAPE:
            raise ValueError(
                f"expected structures of shape [B, 4, 16, 16], got {list(x.shape)}; "
                "encode CSV rows with revstudy.data.dataset.encode_structures"
            )
        z = x
        for step in self.steps:
            z = step(z)
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
        for step in reversed(self.steps):
            z = step.inverse(z)
        return z


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
