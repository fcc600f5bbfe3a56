"""A run folder written by `revstudy train`, loaded for inference: model, prior, config.

Everything that can be wrong with a folder (missing files, another version's format, weights
that do not fit the config) becomes one `RevstudyError` line instead of a torch trace.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from revstudy.data.dataset import Dataset, Split, coarsen, encode_structures
from revstudy.data.numbering import in_order, molecule_keys, order_inputs, relabel, relabelled
from revstudy.errors import RevstudyError, UnknownFieldsError
from revstudy.files import UnsafeFileError, read_regular
from revstudy.training.checkpoint import check_archive
from revstudy.training.config import TrialConfig
from revstudy.training.metrics import (
    RELABELLED,
    Prior,
    evaluate,
    f1_scores,
    f1_skill,
    forward_all,
)
from revstudy.training.model import InvertibleNet
from revstudy.training.precision import set_fp32_precision
from revstudy.training.resolution import PAPER_Y_DIM, paper_resolution_f1
from revstudy.training.retrieval import library_index, retrieval_metrics
from revstudy.training.splits import config_split

PRIOR_FORMAT = 1
NEEDED = ("config.yaml", "model.pt", "prior.pt")


@dataclass
class SavedModel:
    """A trained model with what generation needs: the learned prior and decoder top-k."""

    path: Path
    config: TrialConfig
    model: InvertibleNet
    prior: Prior
    topk: int
    code_rate: torch.Tensor
    run: dict[str, Any] = field(default_factory=dict)  # metrics.json, when present

    def split(self, structures: tuple[str, ...] | list[str]) -> Split:
        """Repeat 0's split of a data file: the one model.pt was trained on."""
        return config_split(structures, self.config, 0)

    def inputs(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Structures [N, 4, 16, 16] in any numbering → what this model must see: the atom
        order it was trained with applied (`revstudy.data.numbering`)."""
        arr = x.cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float32)
        return torch.from_numpy(order_inputs(arr, self.config.atom_order))

    def predict_logits(self, x: torch.Tensor | np.ndarray, average: int = 1) -> torch.Tensor:
        """Y_latent logits [N, y_dim] of structures in any numbering (the model's atom order
        applied first). `average` > 1 (models trained with `relabel` only) averages the
        predicted probabilities over that many numberings: the model's own and
        `average` − 1 random ones (seeded, so a prediction is repeatable)."""
        inputs = self.inputs(x)
        y = forward_all(self.model, inputs)[1]
        if average <= 1:
            return y
        if not self.config.relabel:
            raise RevstudyError(
                f"{self.path}: averaging over numberings needs a model trained with "
                "relabel: true; this one was not (use 1)"
            )
        gen = torch.Generator().manual_seed(self.config.seed)
        prob = torch.sigmoid(y)
        for _ in range(average - 1):
            prob += torch.sigmoid(forward_all(self.model, relabel(inputs, gen))[1])
        return torch.logit(prob / average, eps=1e-7)

    def predict_codes(self, x: torch.Tensor | np.ndarray, average: int = 1) -> np.ndarray:
        """Forward-predicted y_dim-bit spectrum codes (Y_latent > 0) of structures X in any
        numbering (see `predict_logits`)."""
        return (self.predict_logits(x, average) > 0).cpu().numpy().astype(np.uint8)

    def numbering_warning(self) -> str | None:
        """What a user must know before trusting predictions for their own molecules."""
        if self.config.atom_order == "canonical":
            return None
        if self.config.relabel:
            return None
        return (
            f"{self.path}: trained in the data file's carbon numbering (atom_order: source): "
            "for molecules numbered any other way (every SMILES) its predictions are near "
            "chance level; retrain with `atom_order: canonical` in the config"
        )


def _bad(path: Path, what: str) -> RevstudyError:
    return RevstudyError(f"{path}: {what}")


# The most model.pt or prior.pt may inflate to: one model (the paper's is 48 MB; the
# largest the spaces allow stays under 0.5 GB)
MODEL_LIMIT = 2**30


def _check_agreement(path: Path, config: TrialConfig, run: dict[str, Any]) -> None:
    """config.yaml and metrics.json of one run record one configuration: a folder whose
    config.yaml was edited afterwards (its atom order, renumbering, code size) would
    predict with settings the model never trained with, so it is refused, naming them."""
    trained = run.get("config")
    if trained is None:
        return  # a metrics.json from before runs recorded their config
    try:
        recorded = TrialConfig.from_dict(trained, source=str(path / "metrics.json"))
    except (RevstudyError, TypeError, AttributeError) as e:
        raise _bad(path, f"metrics.json: its config is damaged ({e}); retrain") from None
    mine, theirs = config.to_dict(), recorded.to_dict()
    differ = [k for k in mine if mine[k] != theirs.get(k)]
    if differ:
        shown = ", ".join(f"{k} {mine[k]!r} (trained: {theirs.get(k)!r})" for k in differ[:3])
        raise _bad(
            path,
            f"config.yaml disagrees with metrics.json on {shown}: the folder was edited "
            "after training; restore config.yaml or retrain",
        )
    for key in ("repeats", "aggregate"):
        if key in run and not isinstance(run[key], list if key == "repeats" else dict):
            raise _bad(path, f"metrics.json: {key} is damaged; retrain or remove the file")


def load_model(model_dir: str | Path) -> SavedModel:
    """Load config.yaml, model.pt and prior.pt of a run folder, checking they belong together."""
    if not isinstance(model_dir, str | os.PathLike) or "\x00" in str(model_dir):
        raise RevstudyError(f"model folder {model_dir!r}: expected a path to a folder")
    path = Path(model_dir)
    if not path.is_dir():
        raise _bad(path, "model directory not found")
    missing = [n for n in NEEDED if not (path / n).is_file()]
    if missing:
        raise _bad(
            path,
            f"not a run folder of this revstudy version: missing {', '.join(missing)} "
            "(write one with `revstudy train --out DIR`)",
        )
    try:
        config = TrialConfig.load_yaml(path / "config.yaml", follow_links=False, allow_empty=False)
    except UnknownFieldsError as e:
        raise RevstudyError(f"{e} (written by another revstudy version? retrain)") from None
    except RevstudyError as e:  # damaged or edited: the weights were trained under another
        raise RevstudyError(f"{e}; restore it or retrain") from None
    loaded = {}
    for name in ("model.pt", "prior.pt"):
        try:
            check_archive(path / name, MODEL_LIMIT)  # links, FIFOs and zip bombs refused unread
            loaded[name] = torch.load(path / name, map_location="cpu", weights_only=True)
        except UnsafeFileError as e:
            raise RevstudyError(str(e)) from None
        except Exception as e:  # torch raises many types for truncated or foreign files
            raise _bad(path, f"{name} unreadable ({type(e).__name__}); retrain") from None
    state, prior = loaded["model.pt"], loaded["prior.pt"]
    if not isinstance(prior, dict) or prior.get("format") != PRIOR_FORMAT:
        got = prior.get("format") if isinstance(prior, dict) else None
        raise _bad(
            path,
            f"prior.pt has format {got}, this revstudy reads format {PRIOR_FORMAT} "
            "(written by another version; retrain with `revstudy train`)",
        )
    set_fp32_precision(config.allow_tf32)  # inference on cuda in full fp32 unless trained so
    _check_prior(path, prior, config)
    model = InvertibleNet.from_config(config)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise _bad(
            path, f"model.pt does not match config.yaml (another version?): {_state_dict_error(e)}"
        ) from None
    model.eval()
    run: dict[str, Any] = {}
    if os.path.lexists(path / "metrics.json"):
        try:
            run = json.loads(read_regular(path / "metrics.json"))
        except UnsafeFileError as e:
            raise RevstudyError(str(e)) from None
        except (OSError, ValueError) as e:
            raise _bad(
                path, f"metrics.json is damaged ({type(e).__name__}); retrain or remove it"
            ) from None
        if not isinstance(run, dict):
            raise _bad(path, "metrics.json is not a JSON object; retrain or remove it")
        _check_agreement(path, config, run)
    return SavedModel(
        path=path,
        config=config,
        model=model,
        prior=Prior(prior["mean"], prior["std"], prior["code_means"], bool(prior["standard"])),
        topk=int(prior["topk"]),
        code_rate=prior["code_rate"],
        run=run,
    )


def _state_dict_error(e: Exception) -> str:
    """The informative part of torch's load_state_dict error (its first line says nothing)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    detail = [ln for ln in lines if not ln.startswith("Error(s) in loading state_dict")]
    text = "; ".join(detail[:2]) if detail else (lines[0] if lines else type(e).__name__)
    return text[:300]


def _check_prior(path: Path, prior: dict[str, Any], config: TrialConfig) -> None:
    """prior.pt's keys and shapes against the config, so inference never runs on wrong data."""
    shapes = {
        "mean": (config.z_dim,),
        "std": (config.z_dim,),
        "code_means": (2, config.y_dim),
        "code_rate": (config.y_dim,),
    }
    missing = [k for k in (*shapes, "topk", "standard") if k not in prior]
    if missing:
        raise _bad(path, f"prior.pt lacks {', '.join(missing)} (damaged; retrain)")
    for key, shape in shapes.items():
        t = prior[key]
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise _bad(path, f"prior.pt: {key} has shape {got}, config.yaml needs {shape}")
        if not torch.isfinite(t).all():
            raise _bad(path, f"prior.pt: {key} holds NaN or inf (damaged; retrain)")
    if not isinstance(prior["topk"], int) or prior["topk"] < 1:
        raise _bad(path, f"prior.pt: topk must be a positive integer, got {prior['topk']!r}")


def _forward_figures(
    saved: SavedModel,
    lib_in: torch.Tensor,
    dataset: Dataset,
    code: torch.Tensor,
    rows: np.ndarray | None,
) -> dict[str, float]:
    """What a training run adds to `evaluate`: retrieval of the rows' observed `code` among
    the file's distinct structures (`lib_in`: every row's model input), macro F1 and F1 at
    the paper's 128 bits (its skill needs 128-bit training rates, which a run folder keeps
    only when the model itself predicts 128 bits)."""
    x = lib_in if rows is None else lib_in[torch.from_numpy(np.asarray(rows, dtype=np.int64))]
    library, truth = library_index(lib_in, x)
    _, y_lib = forward_all(saved.model, library)
    out = retrieval_metrics(y_lib, truth, code)
    fine = coarsen(dataset.y(), PAPER_Y_DIM)
    if rows is not None:
        fine = fine[np.asarray(rows, dtype=np.int64)]
    rates = saved.code_rate.unsqueeze(0).numpy() if saved.config.y_dim == PAPER_Y_DIM else None
    y = y_lib[torch.from_numpy(truth)]  # the rows' own logits, from the same forward pass
    out.update(paper_resolution_f1(y, fine, rates, saved.config.seed))
    scores = f1_scores(code.numpy(), (y > 0).cpu().numpy())
    out.update(f1_macro=scores["f1_macro"], f1_micro=scores["f1_micro"])
    return out


def _inputs(saved: SavedModel, dataset: Dataset) -> torch.Tensor:
    """Every row's structure in the model's atom order, [N, 4, 16, 16]."""
    ordered = in_order(dataset.structures, saved.config.atom_order, dataset.path)
    return torch.from_numpy(encode_structures(ordered))


def tensors(saved: SavedModel, dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """(X [N, 4, 16, 16] in the model's atom order, code [N, y_dim]) of every row of a data
    file."""
    return _inputs(saved, dataset), torch.from_numpy(coarsen(dataset.y(), saved.config.y_dim))


SPLITS = ("all", "train", "val", "test")


def select_rows(saved: SavedModel, dataset: Dataset, split: str) -> tuple[np.ndarray, str]:
    """Rows of `dataset` to score, and a note on how many the model was trained on.

    `train`/`val`/`test` rebuild repeat 0's split (the one model.pt was trained on) and need
    the model's own training file; `all` scores every row and counts those whose structure
    was in the training split (their scores are optimistic)."""
    if split not in SPLITS:
        raise RevstudyError(f"--split: choose from {', '.join(SPLITS)}, got {split!r}")
    raw = saved.run.get("data")
    info: dict[str, Any] = raw if isinstance(raw, dict) else {}
    first = (saved.run.get("repeats") or [{}])[0]
    final = bool((first.get("split") or {}).get("final", False))
    source: Dataset | None
    if dataset.sha256 == info.get("sha256"):
        source = dataset
    elif split != "all":
        raise RevstudyError(
            f"--split {split}: {dataset.path} is not the file this model was trained on "
            f"({info.get('path', 'unknown')}); use --split all"
        )
    else:
        source = _training_file(info)
    if source is None:
        return np.arange(len(dataset)), "overlap with the training split unknown"
    sp = saved.split(source.structures)
    train = np.concatenate([sp.train, sp.val]) if final else sp.train
    if split != "all":
        rows = {"train": train, "val": sp.val, "test": sp.test}[split]
        if len(rows) == 0:
            raise RevstudyError(f"--split {split}: the model's split has no such rows")
        note = (
            "trained on train+validation (--final): val scores are optimistic"
            if (final and split == "val")
            else f"{split} split of the model's training run"
        )
        return np.sort(rows), note
    keys = molecule_keys(source.structures + dataset.structures)  # one molecule, one key
    seen = {keys[i] for i in train}
    overlap = sum(1 for k in keys[len(source.structures) :] if k in seen)
    note = (
        f"{overlap} of {len(dataset)} rows were in the model's training split: their scores "
        "are optimistic (use --split test or val)"
        if overlap
        else "no row was in the model's training split"
    )
    return np.arange(len(dataset)), note


def model_data(saved: SavedModel, data: str | Path | None) -> tuple[Path, str | None]:
    """The data file to score `saved` on, and why when it was not given: `data` when
    given; else the file its metrics.json records (used only with the recorded sha256,
    `revstudy.data.fetch.recorded_data`), so `--split test` finds the model's own split;
    else `resolve_data`'s default."""
    from revstudy.data.fetch import recorded_data, resolve_data

    if data is not None:
        return resolve_data(data), None
    info = saved.run.get("data")
    path = info.get("path") if isinstance(info, dict) else None
    sha = info.get("sha256") if isinstance(info, dict) else None
    if isinstance(path, str) and path and isinstance(sha, str):
        found = recorded_data(str(saved.path / "metrics.json"), path, sha)
        return found, f"the file {saved.path} was trained on"
    return resolve_data(None), "no --data given and the model records no data file"


def _training_file(info: dict[str, Any]) -> Dataset | None:
    """The model's training file, if it is still where it was and unchanged."""
    from revstudy.data.dataset import read_dataset

    path = info.get("path")
    if not path or not Path(path).is_file():
        return None
    try:
        ds = read_dataset(path)
    except RevstudyError:
        return None
    return ds if ds.sha256 == info.get("sha256") else None


def evaluate_file(
    saved: SavedModel,
    dataset: Dataset,
    seed: int | None = None,
    rows: np.ndarray | None = None,
) -> dict[str, Any]:
    """All metrics on the `rows` of `dataset` (default all), keyed like a metrics.json repeat."""
    every, code = tensors(saved, dataset)
    x = every
    if rows is not None:
        idx = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        x, code = every[idx], code[idx]
    if len(x) < 2:
        raise RevstudyError(f"{dataset.path}: evaluation needs at least 2 rows")
    ev = evaluate(
        saved.model,
        x,
        code,
        saved.prior,
        saved.config,
        code_train=saved.code_rate.unsqueeze(0),  # per-bin rates stand in for training codes
        seed=saved.config.seed if seed is None else seed,
        topk=saved.topk,
    )
    first = (saved.run.get("repeats") or [{}])[0]
    out: dict[str, Any] = {
        "repeat": 0,
        "seed": saved.config.seed if seed is None else seed,
        "split": {"eval": len(x), "data": dataset.path, "sha256": dataset.sha256},
    }
    out.update(ev.metrics)
    own = _forward_figures(saved, every, dataset, code, rows)
    out.update({k: v for k, v in own.items() if k not in ("f1_macro", "f1_micro")})
    # every structure renumbered at random (the fixed RELABEL_SEED), then put in the
    # model's atom order, as other users' molecules arrive
    moved_in = saved.inputs(relabelled(dataset.x()))
    moved = _forward_figures(saved, moved_in, dataset, code, rows)
    moved["f1_macro_skill"] = f1_skill(moved["f1_macro"], out["f1_bin_prior_baseline"])
    out.update({f"{k}_relabelled": v for k, v in moved.items() if k in RELABELLED})
    for key in ("train_seconds", "epochs", "val_loss", "n_train"):
        out[key] = first.get(key, math.nan)
    out["n_eval"] = float(len(x))
    return out


def evaluate_split(saved: SavedModel, dataset: Dataset, split: str = "all") -> dict[str, Any]:
    """What `revstudy evaluate --json` prints and `revstudy.evaluate` returns: every metric on
    the `split` rows of `dataset` (`select_rows`), keyed like a metrics.json repeat, with
    `split` = {eval: rows scored, data, sha256, name: `split`, note: how many of them the
    model was trained on}."""
    rows, note = select_rows(saved, dataset, split)
    doc = evaluate_file(saved, dataset, rows=rows)
    doc["split"].update(name=split, note=note)
    return doc
