"""Checkpoints load without unpickling code, on the CPU first, and restore a Trainer exactly.

The GPU failure (a CUDA-trained state loaded with map_location="cuda": the CPU generator's
state moved to the GPU, `Generator.set_state` raised) is reproduced on CPU with the `meta`
device, which also moves every tensor away from the CPU.
"""

from __future__ import annotations

import copy
import io
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from revstudy.data.dataset import read_dataset
from revstudy.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from revstudy.training.config import TrialConfig
from revstudy.training.splits import SplitTensors
from revstudy.training.trainer import Trainer, fit

TINY = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=2, cd_draws=1)


class Payload:
    """Unpickling this writes a marker file: the attack a crafted checkpoint carries."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


@pytest.fixture()
def trained(synthetic_csv: Path) -> tuple[Trainer, SplitTensors]:
    torch.set_num_threads(1)
    data = SplitTensors.build(read_dataset(synthetic_csv), TINY)
    t = Trainer(TINY, data)
    t.train_epoch()
    return t, data


def test_state_mapped_to_another_device_is_refused_clearly(
    trained: tuple[Trainer, SplitTensors], tmp_path: Path
) -> None:
    t, data = trained
    path = tmp_path / "state.pt"
    save_checkpoint(path, t.state())
    moved = torch.load(path, map_location="meta", weights_only=True)  # the old, broken load
    with pytest.raises(TypeError, match=r"RNG state must be a torch\.ByteTensor"):
        torch.Generator().set_state(moved["generator"])
    with pytest.raises(CheckpointError, match="meta device"):
        Trainer(TINY, data).load_state(moved)


def test_checkpoint_loads_to_cpu_and_resumes_exactly(
    trained: tuple[Trainer, SplitTensors], tmp_path: Path
) -> None:
    t, data = trained
    path = tmp_path / "state.pt"
    save_checkpoint(path, t.state())
    state = load_checkpoint(path)
    assert state["generator"].device.type == "cpu"
    assert all(v.device.type == "cpu" for v in state["model"].values())
    resumed = Trainer(TINY, data, seed=99)
    resumed.load_state(state)
    fit(resumed)
    fit(t)
    assert resumed.history[-1].train_loss == t.history[-1].train_loss
    for p, q in zip(resumed.model.parameters(), t.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_pickled_payload_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "state.pt"
    torch.save({"trainers": [Payload(marker)]}, path)
    with pytest.raises(CheckpointError, match="untrusted checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()
    # a plain pickle (not a torch zip) is refused the same way
    path.write_bytes(pickle.dumps(Payload(marker), protocol=2))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def test_torn_and_foreign_files_are_one_line_errors(
    trained: tuple[Trainer, SplitTensors], tmp_path: Path
) -> None:
    t, data = trained
    path = tmp_path / "state.pt"
    save_checkpoint(path, t.state())
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match="damaged") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    buf = io.BytesIO()
    torch.save([1, 2], buf)
    path.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(path)
    assert zipfile.is_zipfile(io.BytesIO(whole))
    with pytest.raises(CheckpointError, match="lacks"):
        Trainer(TINY, data).load_state({"model": {}})
    bad = t.state()
    bad["model"] = {"nonsense": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="does not fit"):
        Trainer(TINY, data).load_state(bad)


def test_save_is_atomic(trained: tuple[Trainer, SplitTensors], tmp_path: Path) -> None:
    t, _ = trained
    path = tmp_path / "ck" / "state.pt"
    save_checkpoint(path, t.state())
    save_checkpoint(path, t.state())  # over an existing one
    assert [p.name for p in path.parent.iterdir()] == ["state.pt"]  # no temp file left


def _as_if_from_cuda(state: dict, recorded: bool = True) -> dict:
    """The state a CUDA trainer writes: a 16-byte Philox generator state."""
    state = {**state, "generator": torch.arange(16, dtype=torch.uint8)}
    if recorded:
        state["generator_device"] = "cuda"
    else:
        state.pop("generator_device", None)  # a checkpoint from before the field existed
    return state


@pytest.mark.parametrize("recorded", [True, False])
def test_a_checkpoint_from_the_other_device_type_resumes_deterministically(
    trained: tuple[Trainer, SplitTensors], recorded: bool
) -> None:
    t, data = trained
    state = t.state()
    assert state["generator_device"] == "cpu"
    foreign = _as_if_from_cuda(state, recorded)
    with pytest.raises(RuntimeError):  # what the old load did with it: "does not fit"
        torch.Generator().set_state(foreign["generator"])
    runs = []
    for _ in range(2):
        resumed = Trainer(TINY, data)
        resumed.load_state(copy.deepcopy(foreign))  # a state dict holds live optimiser tensors
        assert resumed.generator_reseeded == {"epoch": 1, "from": "cuda", "to": "cpu"}
        fit(resumed)
        runs.append(resumed)
    assert runs[0].history[-1].train_loss == runs[1].history[-1].train_loss
    for p, q in zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True):
        assert torch.equal(p, q)
    same = Trainer(TINY, data)
    same.load_state(state)  # the same device type: the saved stream, no reseed
    assert same.generator_reseeded is None


def test_an_unknown_generator_device_is_refused(trained: tuple[Trainer, SplitTensors]) -> None:
    t, data = trained
    with pytest.raises(CheckpointError, match="generator_device 'tpu'"):
        Trainer(TINY, data).load_state({**t.state(), "generator_device": "tpu"})


def test_device_tensors_cross_to_the_host_in_a_few_packed_copies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue #23.7: thousands of small tensors, one transfer per dtype and chunk. CPU tensors
    stand in for device ones (`on_device`); `cat` is counted as the transfers are."""
    from revstudy.training import checkpoint

    gen = torch.Generator().manual_seed(0)
    weights = [torch.randn(3, 5, generator=gen) for _ in range(700)]
    steps = [torch.tensor(float(i)) for i in range(70)]  # 0-dim, like fused Adam's `step`
    ints = torch.arange(6).reshape(2, 3).t()  # another dtype, not contiguous
    state = {"trainers": [{"model": {str(i): w for i, w in enumerate(weights)}, "s": steps}],
             "ints": (ints, "text", 3), "gen": torch.zeros(4, dtype=torch.uint8)}  # fmt: skip
    cats: list[int] = []
    real_cat = torch.cat
    monkeypatch.setattr(torch, "cat", lambda ts, *a, **k: cats.append(len(ts)) or real_cat(ts))
    monkeypatch.setattr(checkpoint, "TRANSFER_BYTES", 20 * 1024)
    on_device = lambda t: t.dtype != torch.uint8  # noqa: E731 - the generator stays
    host = checkpoint.to_host(state, on_device=on_device)
    assert len(cats) == 4  # float32: 700 x 60 B + 70 x 4 B in 20 KiB chunks = 3; int64: 1
    got = host["trainers"][0]
    for i, w in enumerate(weights):
        assert torch.equal(got["model"][str(i)], w) and got["model"][str(i)] is not w
    assert [float(s) for s in got["s"]] == list(range(70)) and got["s"][0].dim() == 0
    assert torch.equal(host["ints"][0], ints) and host["ints"][1:] == ("text", 3)
    assert host["gen"] is state["gen"]  # not a device tensor: left as it is
    assert checkpoint.to_host(state)["gen"] is state["gen"]  # CPU state: nothing copied
