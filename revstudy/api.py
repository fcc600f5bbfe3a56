"""The Python API: what the CLI does, as functions (`import revstudy; revstudy.launch(...)`).

Each returns plain data (dicts, dataclasses) rather than printing, and raises
`revstudy.errors.RevstudyError` (one line, naming the file or option) on bad input.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revstudy.errors import RevstudyError

if TYPE_CHECKING:
    from revstudy.study.export import ExportResult
    from revstudy.training.runs import RunResult
    from revstudy.training.saved import SavedModel

__all__ = [
    "elucidate",
    "evaluate",
    "export",
    "launch",
    "list_studies",
    "predict",
    "report",
    "resume",
    "status",
    "train",
    "train_config",
]


def launch(
    space: str = "default",
    *,
    data: str | None = None,
    name: str = "",
    progress: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Run (or continue) a study; `options` are `revstudy.study.options.LaunchOptions` fields
    (num_samples, sampler, objectives, repeats, gpus_per_trial, storage, address, …).

    Returns the study summary (`status` gives the same later)."""
    from dataclasses import fields

    from revstudy.study.driver import launch as run_launch
    from revstudy.study.options import LaunchOptions

    known = {f.name for f in fields(LaunchOptions)} - {"space", "data", "name"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise RevstudyError(
            f"launch: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    objectives = options.pop("objectives", [])
    if isinstance(objectives, str):
        objectives = objectives.split(",")
    if not isinstance(objectives, list | tuple):
        raise RevstudyError(f"objectives {objectives!r}: expected METRIC:max|min strings")
    for key in ("storage",):
        if isinstance(options.get(key), Path):
            options[key] = str(options[key])
    opts = LaunchOptions(
        space=_text(space, "space"),
        data=_path_or_none(data, "data"),
        name=_text(name, "name", empty=True),
        objectives=list(objectives),
        **options,
    )
    opts.validate()
    return run_launch(opts, progress=progress)


def _text(value: Any, what: str, empty: bool = False) -> str:
    """A name or path given as text (or a Path); RevstudyError naming `what` otherwise."""
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or (not value and not empty):
        raise RevstudyError(f"{what} {value!r}: expected a name or path (a string)")
    return value


def _path_or_none(value: Any, what: str) -> str | None:
    return None if value is None else _text(value, what)


def _short(value: Any, limit: int = 80) -> str:
    """repr of a value for a one-line error, cut short (a list of 100k SMILES is no message)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _integer(value: Any, what: str, low: int | None = None, high: int | None = None) -> int:
    """An integer option within [low, high]; RevstudyError naming it as the CLI would."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or ((low is not None and value < low) or (high is not None and value > high))
    ):
        if low is not None and high is not None:
            wanted = f"an integer from {low} to {high}"
        elif low is not None:
            wanted = f"an integer >= {low}"
        else:
            wanted = "an integer"
        raise RevstudyError(f"{what} {value!r}: expected {wanted} (as --{what})")
    return value


def resume(
    study: str, *, storage: str | None = None, retry_failed: bool = False, progress: bool = False
) -> dict[str, Any]:
    """Continue an interrupted study (finished trials kept, unfinished ones from checkpoints)."""
    from revstudy.study.driver import resume as run_resume

    return run_resume(
        _text(study, "study"),
        storage=_path_or_none(storage, "storage"),
        retry_failed=bool(retry_failed),
        progress=bool(progress),
    )


def status(study: str, *, storage: str | None = None) -> dict[str, Any]:
    """Counts by state, the best trial and the folder size, without starting Ray."""
    from revstudy.study.summary import study_summary

    return study_summary(_text(study, "study"), _path_or_none(storage, "storage"))


def list_studies(*, storage: str | None = None) -> list[dict[str, Any]]:
    """Every study under the storage root, as `revstudy list --json` prints them: each
    with `folder` (what status and resume take); a damaged one has `damaged` instead."""
    from revstudy.study.summary import list_studies as studies

    return studies(_path_or_none(storage, "storage"))


def report(study: str, *, storage: str | None = None, out: str | Path | None = None) -> Path:
    """Write the study's HTML report (default STUDY/report.html); returns its path."""
    import analysis
    from revstudy.studyfolder import find_study

    folder = find_study(_text(study, "study"), _path_or_none(storage, "storage"))
    return analysis.write_report(folder, _path_or_none(out, "out"))


def train(
    config: str | Path | None = None,
    *,
    data: str | None = None,
    repeats: int = 1,
    device: str = "auto",
    out: str | Path | None = None,
    test: bool = False,
) -> RunResult:
    """Train one configuration (a YAML path, default the paper's) on `repeats` seeded splits;
    returns `revstudy.training.runs.RunResult` and writes a run folder when `out` is given."""
    from revstudy.data.dataset import read_dataset
    from revstudy.data.fetch import resolve_data
    from revstudy.study.spaces import load_fixed_config
    from revstudy.training.config import TrialConfig
    from revstudy.training.runs import data_for_config, train_repeats, write_run
    from revstudy.training.trainer import resolve_device

    config = _path_or_none(config, "config")
    data = _path_or_none(data, "data")
    repeats = _integer(repeats, "repeats", low=1)
    cfg = TrialConfig.load_yaml(config) if config else load_fixed_config("paper")
    dev = str(resolve_device(_text(device, "device")))
    dataset = read_dataset(resolve_data(data_for_config(config, data)))
    result = train_repeats(cfg, dataset, repeats, dev, evaluate_test=test)
    if out is not None:
        write_run(Path(_text(out, "out")), result, dataset, dev)
    return result


train_config = train  # the name before revstudy.train (a module then) was free


def export(
    study: str | Path,
    *,
    top: int = 1,
    objective: str | None = None,
    out: str | Path | None = None,
    storage: str | Path | None = None,
) -> ExportResult:
    """Write a study's `top` best configurations as YAML that `train` accepts (`out`: the
    file for top=1, default best.yaml; else the folder, default best), as `revstudy export`;
    returns their paths, ranking and objectives."""
    from revstudy.study.export import export_study

    return export_study(
        _text(study, "study"),
        top=_integer(top, "top", low=1),
        objective=_path_or_none(objective, "objective"),
        out=_path_or_none(out, "out"),
        storage=_path_or_none(storage, "storage"),
    )


def _model(model: Any) -> SavedModel:
    """A run folder loaded; its numbering caveat (if any) as a Python warning, where the
    CLI prints it on stderr."""
    import warnings

    from revstudy.training.saved import load_model

    saved = load_model(_text(model, "model"))
    caveat = saved.numbering_warning()
    if caveat:
        warnings.warn(caveat, UserWarning, stacklevel=3)
    return saved


def evaluate(
    model: str | Path, data: str | Path | None = None, *, split: str = "all"
) -> dict[str, Any]:
    """Every metric of a saved model on the `split` rows (all, or the train/val/test split it
    was trained with) of a data file (default: the one it was trained on, as `revstudy
    evaluate`): what `revstudy evaluate --json` prints."""
    from revstudy.data.dataset import read_dataset
    from revstudy.training.saved import evaluate_split, load_model, model_data

    folder, given, part = _text(model, "model"), _path_or_none(data, "data"), _text(split, "split")
    saved = load_model(folder)
    path, _ = model_data(saved, given)
    return evaluate_split(saved, read_dataset(path), part)


def predict(
    model: str | Path, smiles: Sequence[str] | str, *, average: int = 1
) -> list[dict[str, Any]]:
    """The forward-predicted spectrum code of each SMILES: the rows `revstudy predict --json`
    prints under "predictions", in input order; a structure that cannot be read is a row
    {"input", "error"}, not an exception. `average` > 1 (relabel models) averages over
    that many carbon numberings."""
    from revstudy.elucidation.prediction import (
        MAX_AVERAGE,
        prediction_batches,
        structure_inputs,
    )

    names = [smiles] if isinstance(smiles, str) else smiles
    if (
        not isinstance(names, list | tuple)
        or not names
        or not all(isinstance(s, str) for s in names)
    ):
        raise RevstudyError(f"smiles {_short(smiles)}: expected a SMILES string or a list of them")
    average = _integer(average, "average", 1, MAX_AVERAGE)
    saved = _model(model)
    items = structure_inputs(smiles=list(names))
    return [row for rows in prediction_batches(saved, items, average) for row in rows]


def elucidate(
    model: str | Path,
    spectrum: str | Path | Sequence[float],
    *,
    samples: int = 100,
    top: int = 10,
    seed: int = 0,
    library: str | Path | None = None,
) -> dict[str, Any]:
    """Candidate structures for a 13C spectrum (ppm values, a text of them, a file, or the
    data file's 1024 bits), ranked by their predicted spectra, and with `library` a CSV's
    molecules ranked the same way: what `revstudy elucidate --json` prints."""
    from revstudy.data.chem import require_rdkit
    from revstudy.elucidation.elucidate import (
        MAX_SAMPLES,
        elucidation_document,
        parse_query_spectrum,
    )

    text = _spectrum_text(spectrum)
    samples = _integer(samples, "samples", 1, MAX_SAMPLES)
    top = _integer(top, "top", low=1)
    seed = _integer(seed, "seed")
    lib = _path_or_none(library, "library")
    require_rdkit("elucidation")
    bits = parse_query_spectrum(text)
    return elucidation_document(_model(model), bits, samples, top, seed, lib)


def _spectrum_text(spectrum: Any) -> str:
    """A query spectrum as `parse_query_spectrum` reads it: text as given, a list of ppm
    values joined by commas."""
    if isinstance(spectrum, str | Path):
        return _text(spectrum, "spectrum", empty=True)
    if hasattr(spectrum, "tolist"):  # a numpy array
        spectrum = spectrum.tolist()
    numbers = isinstance(spectrum, list | tuple) and all(
        isinstance(v, Real) and not isinstance(v, bool) for v in spectrum
    )
    if not numbers:
        raise RevstudyError(
            f"spectrum {_short(spectrum)}: expected ppm values, a text or file of them, or "
            "1024 bits"
        )
    return ",".join(repr(float(v)) for v in spectrum)
