"""The opt-in compiled training step (revstudy.training.compiled, `compile_step`): the same
training through Dynamo, eager weights and checkpoints, CUDA graphs refused off a GPU, and
a pack's members stepped as one compiled ensemble."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from revstudy.data.dataset import read_dataset
from revstudy.errors import ConfigError
from revstudy.training.compiled import training_only
from revstudy.training.config import STEP_FIELDS, TrialConfig
from revstudy.training.fused import FusedRepeats, fusable
from revstudy.training.splits import SplitTensors
from revstudy.training.trainer import Trainer

TINY = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=2, cd_draws=1)


def test_a_step_through_dynamo_trains_as_the_eager_step(synthetic_csv: Path) -> None:
    """`eager` runs the training step through torch.compile (Dynamo's capture, no code
    generation): two epochs give the eager run's losses and weights exactly; evaluation
    stays eager; the weights and checkpoints are the plain model's."""
    data = SplitTensors.build(read_dataset(synthetic_csv), TINY)
    torch._dynamo.reset()
    plain = Trainer(TINY, data)
    through = Trainer(TINY.replace(compile_step="eager"), data)
    assert "forward" in vars(through.model) and "forward" not in vars(plain.model)
    for _ in range(2):
        a, b = plain.train_epoch(), through.train_epoch()
        assert (a.train_loss, a.val_loss, a.val_f1_macro) == (
            b.train_loss,
            b.val_loss,
            b.val_f1_macro,
        )
    for (name, p), q in zip(
        plain.model.state_dict().items(), through.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
    resumed = Trainer(TINY, data)  # an eager trainer takes the compiled one's checkpoint
    resumed.load_state(through.state())
    assert resumed.epoch == 2


@pytest.mark.parametrize("mode", ["reduce-overhead", "cudagraphs"])
def test_cuda_graphs_off_a_gpu_are_refused_naming_the_field(synthetic_csv: Path, mode: str) -> None:
    data = SplitTensors.build(read_dataset(synthetic_csv), TINY)
    with pytest.raises(ConfigError, match=rf"compile_step: '{mode}' records CUDA graphs .* cpu"):
        Trainer(TINY.replace(compile_step=mode), data)


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="compile_step"):
        TrialConfig.from_dict({"compile_step": "fastest"})


@pytest.mark.slow
def test_compiled_members_step_as_one_ensemble_as_the_eager_one(synthetic_csv: Path) -> None:
    """A pack's compiled step is its vmapped forward and inverse through torch.compile
    (`eager`: Dynamo's capture, no code generation), one graph for every member: two epochs
    of three members with their own learning rates give the eager ensemble's losses and
    weights exactly, a member leaving after the first (the other two go on compiled, a new
    graph for two). The compile mode shapes the step like the network."""
    assert "compile_step" in STEP_FIELDS
    ds = read_dataset(synthetic_csv)

    def members(cfg: TrialConfig) -> list[Trainer]:
        return [
            Trainer(cfg.replace(lr=1e-3 * (1 + r)), SplitTensors.build(ds, cfg, r), seed=r)
            for r in range(3)
        ]

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    one_batch = TINY.replace(batch_size=512)  # one step an epoch: one graph per member count
    plain = FusedRepeats(members(one_batch))
    through = FusedRepeats(members(one_batch.replace(compile_step="eager")))
    assert fusable(through.trainers) is None
    for epoch in range(2):
        if epoch == 1:
            plain, through = plain.keep([0, 2]), through.keep([0, 2])
        a, b = plain.train_epoch(), through.train_epoch()
        assert [(r.train_loss, r.val_loss) for r in a] == [(r.train_loss, r.val_loss) for r in b]
    for name, p in plain.params.items():
        assert torch.equal(p, through.params[name]), name
    assert torch._dynamo.utils.counters["frames"]["ok"] >= 2  # the step went through Dynamo


def test_compiled_functions_run_only_where_a_backward_follows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue #23.3: under CUDA graphs a replay overwrites the previous outputs, so evaluation
    (forward, inverse, then the forward's outputs again) must not call the compiled ones."""
    calls: list[str] = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: lambda *a: calls.append("compiled"))
    monkeypatch.setattr(
        torch.compiler, "cudagraph_mark_step_begin", lambda: calls.append("step begins")
    )
    forward = training_only(lambda x: calls.append("eager"), "reduce-overhead", True)
    inverse = training_only(lambda x: calls.append("eager"), "reduce-overhead", False)
    forward(1)
    inverse(1)
    assert calls == ["step begins", "compiled", "compiled"]
    calls.clear()
    with torch.no_grad():
        forward(1)
        inverse(1)
    assert calls == ["eager", "eager"]
