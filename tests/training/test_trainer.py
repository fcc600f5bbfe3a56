from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from revstudy.cli.app import app
from revstudy.data.dataset import read_dataset
from revstudy.errors import NonFiniteLossError
from revstudy.training import losses as losses_mod
from revstudy.training.config import TrialConfig
from revstudy.training.runs import train_repeats
from revstudy.training.splits import SplitTensors
from revstudy.training.trainer import Trainer, fit

TINY = TrialConfig(blocks=(1, 1, 1, 1, 1), hidden_ratio=0.25, epochs=2, cd_draws=1)
REQUIRED = (
    "f1_macro",
    "f1_micro",
    "f1_random_baseline",
    "inv_error_max",
    "inv_error_mean",
    "z_free_mean_mean",
    "z_free_std_mean",
    "bond_count_corr",
    "aromatic_corr",
    "train_seconds",
    "epochs",
)


def test_training_is_reproducible_and_resumable(synthetic_csv: Path) -> None:
    ds = read_dataset(synthetic_csv)
    data = SplitTensors.build(ds, TINY)
    a = fit(Trainer(TINY, data))
    b = fit(Trainer(TINY, data))
    assert [h.train_loss for h in a.history] == [h.train_loss for h in b.history]
    # stop after epoch 1, checkpoint, resume in a fresh trainer: same result as straight through
    c = Trainer(TINY, data)
    c.train_epoch()
    state = c.state()
    d = Trainer(TINY, data, seed=123)  # a different seed is overwritten by the checkpoint
    d.load_state(state)
    fit(d)
    assert d.history[-1].train_loss == a.history[-1].train_loss
    for p, q in zip(d.model.parameters(), a.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_non_finite_loss_stops_with_clear_error(synthetic_csv: Path, monkeypatch) -> None:
    ds = read_dataset(synthetic_csv)
    monkeypatch.setattr(losses_mod, "spectrum_loss", lambda *a: torch.tensor(float("nan")))
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite training loss \(total, y\) in epoch 1"
    ):
        fit(Trainer(TINY, SplitTensors.build(ds, TINY)))


def test_repeats_use_different_splits(synthetic_csv: Path) -> None:
    res = train_repeats(TINY.replace(epochs=1), read_dataset(synthetic_csv), repeats=2)
    assert [r["seed"] for r in res.repeats] == [0, 1]
    assert res.aggregate["f1_macro"]["max"] >= res.aggregate["f1_macro"]["min"]
    assert res.arrays["repeat_f1_macro"].shape == (2,)


def test_cli_train_writes_metrics_and_model(tmp_path: Path, synthetic_csv: Path) -> None:
    cfg = tmp_path / "tiny.yaml"
    TINY.save_yaml(cfg)
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app,
        [
            "train",
            "--config",
            str(cfg),
            "--data",
            str(synthetic_csv),
            "--out",
            str(out),
            "--repeats",
            "2",
            "--device",
            "cpu",
            "--test",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "metrics.json").read_text())
    assert len(doc["repeats"]) == 2
    for key in REQUIRED:
        assert key in doc["repeats"][0] and set(doc["aggregate"][key]) == {
            "mean",
            "std",
            "min",
            "max",
        }
    assert "aggregate" in doc["test"]
    state = torch.load(out / "model.pt", weights_only=True)
    assert any(k.startswith("stages.") for k in state)
    assert TrialConfig.load_yaml(out / "config.yaml") == TINY
    for name in ("arrays.npz", "config.yaml", "metrics.json", "model.pt", "prior.pt"):
        assert name in res.stderr  # every file it wrote is named


def test_cli_bad_csv_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("A,B,C,D\n1,2,123,0101\n")
    res = CliRunner().invoke(app, ["train", "--data", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert f"error: {bad}:2: field C: expected 136 digits" in res.output


@pytest.mark.slow
def test_real_training_run_learns_above_chance(real_csv: Path) -> None:
    """One short real run of the fast model: F1 well above the random baseline."""
    torch.set_num_threads(2)
    cfg = TrialConfig(epochs=2, cd_draws=1)
    res = train_repeats(cfg, read_dataset(real_csv))
    m = res.repeats[0]["metrics"]
    assert m["f1_macro"] > 2 * m["f1_random_baseline"]
    assert m["inv_error_max"] <= 1e-4


def test_cli_train_test_fraction_zero_is_the_paper_protocol(
    tmp_path: Path, synthetic_csv: Path
) -> None:
    cfg = tmp_path / "tiny.yaml"
    TINY.replace(epochs=1).save_yaml(cfg)
    args = ["train", "--config", str(cfg), "--data", str(synthetic_csv), "--test-fraction", "0"]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert TrialConfig.load_yaml(tmp_path / "run" / "config.yaml").test_fraction == 0.0
    res = CliRunner().invoke(app, [*args, "--test", "--out", str(tmp_path / "r2")])
    assert res.exit_code == 2 and "test split is empty" in res.output
    res = CliRunner().invoke(app, [*args[:-1], "0.95", "--out", str(tmp_path / "r3")])
    assert res.exit_code == 2 and "field test_fraction" in res.output


def test_f1_at_the_papers_resolution_for_any_code_size(synthetic_csv: Path) -> None:
    from revstudy.training.resolution import map_to_resolution

    bits = np.array([[1, 0, 0, 1, 0, 0, 0, 0]])
    assert map_to_resolution(bits, 4).tolist() == [[1, 1, 0, 0]]  # OR-pooled
    assert map_to_resolution(bits[:, :2], 8).tolist() == [[1, 1, 1, 1, 0, 0, 0, 0]]
    ds = read_dataset(synthetic_csv)
    for y_dim in (128, 64):
        cfg = TINY.replace(epochs=1, y_dim=y_dim)
        m = fit(Trainer(cfg, SplitTensors.build(ds, cfg))).evaluate("val").metrics
        assert 0 <= m["f1_macro_128"] <= 1 and "f1_macro_skill_128" in m
        if y_dim == 128:  # same resolution: the same number
            assert m["f1_macro_128"] == pytest.approx(m["f1_macro"])


def test_the_perfect_code_ceiling_at_128_bits() -> None:
    """Issue #22.5: what a y_dim-bit code can score at 128 bits at best, computed here from
    first principles with scikit-learn on hand-made codes."""
    from sklearn.metrics import f1_score

    from revstudy.training.resolution import perfect_code_f1_128

    gen = np.random.default_rng(0)
    truth = (gen.random((40, 128)) < 0.08).astype(np.uint8)
    truth[:, 100:] = 0  # bins without a positive: 0 for any prediction
    # 128 bits: perfect on the 100 bins with support (some may lack one by chance)
    support = truth.any(axis=0)
    assert perfect_code_f1_128(truth, 128) == pytest.approx(support.mean())
    assert perfect_code_f1_128(truth, 256) == perfect_code_f1_128(truth, 128)
    # 32 bits: each bit covers 4 bins and claims all of them
    coarse = truth.reshape(40, 32, 4).max(axis=2).repeat(4, axis=1)
    want = f1_score(truth, coarse, average="macro", zero_division=0)
    assert perfect_code_f1_128(truth, 32) == pytest.approx(want)
    assert perfect_code_f1_128(truth, 32) < perfect_code_f1_128(truth, 64) < support.mean()


def test_val_every_skips_validation_and_changes_nothing_else(synthetic_csv: Path) -> None:
    """Validation draws from its own generator, so skipping epochs' validation leaves the
    training bit for bit as it was; the skipped epochs record NaN, the validated ones the
    same figures, the last epoch and `validate_epochs` (a study's ASHA rungs) always."""
    data = SplitTensors.build(read_dataset(synthetic_csv), TINY)
    every = fit(Trainer(TINY.replace(epochs=5), data))
    sparse = Trainer(TINY.replace(epochs=5, val_every=3), data)
    sparse.validate_epochs = frozenset({1})
    fit(sparse)
    for a, b in zip(every.history, sparse.history, strict=True):
        assert a.train_loss == b.train_loss
        if a.epoch in (1, 3, 5):
            assert (a.val_loss, a.val_f1_macro, a.val_retrieval_mrr) == (
                b.val_loss, b.val_f1_macro, b.val_retrieval_mrr,
            )  # fmt: skip
        else:
            assert np.isnan([b.val_loss, b.val_f1_skill, b.val_f1_macro_relabelled]).all()
    for p, q in zip(every.model.parameters(), sparse.model.parameters(), strict=True):
        assert torch.equal(p, q)
    with pytest.raises(Exception, match="val_every"):
        TINY.replace(val_every=0)
