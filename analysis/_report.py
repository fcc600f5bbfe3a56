"""write_report: one offline HTML file with every figure and table of a study.

Each section is built independently: if one cannot be drawn (no arrays, no Optuna record,
too few trials) it shows the reason and the rest of the report is still written.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from revstudy.paper import PAPER_FIGURES

from . import _stats
from ._headline import (
    comparison_table,
    headline_data,
    reference_note,
    render_headline,
    warm_start_note,
)
from ._html import Section, render_page
from ._load import DamagedFile, Study, best_trials, load_study
from ._optuna_views import FANOVA_TRIALS
from ._plot_generation import count_scatter_data, count_scatter_figure
from ._plot_latent import (
    cd_curve_data,
    cd_curve_figure,
    cd_gap_note,
    zfree_histogram_figure,
    zfree_qq_data,
    zfree_qq_figure,
)
from ._plot_metrics import (
    f1_distribution_data,
    f1_distribution_figure,
    inversion_error_data,
    inversion_error_figure,
    tf32_note,
)
from ._plot_numbering import numbering_scatter_data, numbering_scatter_figure
from ._plot_optuna import Unavailable, optuna_figures
from ._plot_training import learning_curve_data, learning_curve_figure

__all__ = ["build_sections", "write_report"]

_KEY_METRICS = [
    "f1_macro",
    "f1_macro_skill",
    "f1_macro_skill_relabelled",
    "retrieval_mrr",
    "retrieval_top10",
    "f1_random_baseline",
    "inv_error_max",
    "z_free_std_mean",
    "bond_count_corr",
    "aromatic_corr",
    "val_loss",
    "epochs_done",
    "wall_seconds",
]


@contextmanager
def _only_damage_warnings() -> Iterator[None]:
    """The libraries' numerical warnings silenced, `DamagedFile` (the one a reader needs)
    shown."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("default", DamagedFile)
        yield


def _guard(section: Section, build: Callable[[Section], None]) -> Section:
    """Run a section builder; turn any failure into a short reason in the page."""
    try:
        with _only_damage_warnings():
            build(section)
    except Unavailable as exc:
        section.add_reason(f"Not available: {exc}")
    except Exception as exc:  # a broken section must not lose the whole report
        section.add_reason(f"Could not be drawn: {type(exc).__name__}: {exc}")
    return section


def _answer(study: Study) -> Callable[[Section], None]:
    def build(sec: Section) -> None:
        sec.add_html(render_headline(headline_data(study), str(study.path.resolve()), ""))
        for note in (warm_start_note(study), reference_note(study)):
            if note:
                sec.add_text(note)

    return build


def _compare(study: Study, others: list[Study]) -> Callable[[Section], None]:
    def build(sec: Section) -> None:
        sec.add_text(
            "Each study's best completed trial against its own paper-baseline trial. Values "
            "are comparable across rows only where the objectives are the same; each study's "
            "lead over its baseline is the fair comparison."
        )
        sec.add_table(comparison_table([study, *others]), "One row per study")

    return build


def _summary(study: Study) -> Callable[[Section], None]:
    def build(sec: Section) -> None:
        info = study.study_info
        space = info.space
        rows = {
            "study": study.name,
            "search space": space.get("name", ""),
            "sampler": info.sampler,
            "scheduler": info.scheduler,
            "objectives": ", ".join(f"{o.metric} ({o.mode})" for o in study.objectives),
            "num_samples": info.num_samples or "",
            "repeats": info.repeats,
            "pack": packs_text(study),
            "seed": info.seed,
            "warm start": ", ".join(f"{w.study} ({w.used} trials)" for w in info.warm_start),
            "data rows": info.data.rows if info.data and info.data.rows is not None else "",
            "created": info.created,
            "versions": json.dumps(info.versions),
        }
        sec.add_table(pd.DataFrame({"field": list(rows), "value": [str(v) for v in rows.values()]}))
        params = space.get("params") if isinstance(space, dict) else None
        if isinstance(params, list):  # revstudy writes a list of {name, type, ...}
            params = {p.get("name", str(i)): p for i, p in enumerate(params)}
        if params:
            sec.add_table(
                pd.DataFrame(
                    {
                        "parameter": list(params),
                        "distribution": [json.dumps(v) for v in params.values()],
                    }
                ),
                "Search space",
            )
        counts = study.state_counts.rename_axis("state").reset_index(name="trials")
        sec.add_table(counts, f"Trials by state ({len(study.trials)} in all)")
        if study.trials.empty:
            sec.add_reason("The study has no trials yet.")
            return
        best = best_trials(study, k=10)
        if best.empty:
            sec.add_reason("No finished trial has a value for every objective yet.")
        else:
            objs = [o.metric for o in study.objectives]
            cfg = [c for c in best.columns if c.startswith("config/")]
            cols = ["trial_id", "number", "state", "is_baseline", *objs]
            cols += [c for c in _KEY_METRICS if c in best.columns and c not in cols] + cfg
            if info.pack > 1 and "pack" in best.columns:  # which trials trained together
                cols.append("pack")
            if study.is_multi_objective:
                cols.insert(4, "pareto")
            sec.add_table(
                best[cols],
                f"Best trials (Pareto-optimal first, then by {objs[0]}); click a header to sort",
            )
        if "repeat_fallback" in study.trials.columns:
            fell = study.trials[study.trials["repeat_fallback"].fillna("").astype(str) != ""]
            if not fell.empty:
                sec.add_warning(
                    f"{len(fell)} trial(s) could not train their repeats as one vmapped "
                    "ensemble on their device and trained them one after another (same "
                    f"results, slower); first reason: {fell['repeat_fallback'].iloc[0]}"
                )
        if "generator_reseeded" in study.trials.columns:
            reseeded = study.trials[study.trials["generator_reseeded"].fillna(0) > 0]
            if not reseeded.empty:
                sec.add_warning(
                    f"{len(reseeded)} trial(s) resumed on another device type (CPU ↔ GPU) than "
                    "the one their checkpoint came from: their random draws went on from a "
                    "generator reseeded from seed and epoch, so they are deterministic but do "
                    "not match an uninterrupted run: "
                    + ", ".join(map(str, reseeded["trial_id"].head(10)))
                )
        failed = study.trials[study.trials["state"] == "FAILED"]
        if not failed.empty:
            sec.add_table(failed[["trial_id", "number", "failure_reason"]], "Failed trials")

    return build


def packs_text(study: Study) -> str:
    """How the study's trials trained: alone, or K at a time as one ensemble (`--pack`);
    each member is its own trial in every table and figure either way."""
    k = study.study_info.pack
    if k <= 1:
        return "1 (each trial alone)"
    packs = study.trials.get("pack", pd.Series(dtype=str)).fillna("").astype(str)
    packed = packs[packs != ""]
    return (
        f"up to {k} trials of one network shape trained together as one ensemble: "
        f"{len(packed)} trial(s) in {packed.nunique()} pack(s); each is its own trial here"
    )


def _optuna_section(figs: dict | Exception, key: str) -> Callable[[Section], None]:
    def build(sec: Section) -> None:
        if isinstance(figs, Exception):
            raise figs
        if key not in figs:
            raise Unavailable("fewer than two parameters to contour")
        for f in figs[key]:
            sec.add_figure(f)

    return build


def _importance(table: pd.DataFrame, figs: dict | Exception) -> Callable[[Section], None]:
    def build(sec: Section) -> None:
        sec.add_text(
            "PED-ANOVA: which parameters matter for reaching the top 10 % of trials; "
            "fANOVA: share of the objective's variance each parameter explains. Both use "
            "finished trials only (Optuna state COMPLETE): trials stopped early by ASHA are "
            "PRUNED and left out, since their values come from fewer epochs. Past "
            f"{FANOVA_TRIALS} finished trials fANOVA sees a seeded random {FANOVA_TRIALS} of "
            "them (its forest's cost grows with the square of its trials; the note says so)."
        )
        caveat = importance_caveat(table)
        if caveat:
            sec.add_warning(caveat)
        sec.add_table(table, "Importance per objective and evaluator (normalised to sum 1)")
        if not isinstance(figs, Exception) and "importance" in figs:
            for f in figs["importance"]:
                sec.add_figure(f)

    return build


def importance_caveat(table: pd.DataFrame) -> str:
    """A warning when too few finished trials stand behind the importances ('' if enough)."""
    if "n_trials" not in table or table["n_trials"].dropna().empty:
        return ""
    n = int(table["n_trials"].dropna().iloc[0])
    params = table.loc[table["param"] != "", "param"].nunique()
    if params and n < 10 * params:
        return (
            f"Only {n} finished trial(s) for {params} parameter(s): importances from fewer "
            f"than ~{10 * params} trials are rough, and a ranking of them is not reliable."
        )
    return ""


def _best_with(study: Study, *keys: str) -> tuple[str, dict]:
    """The best trial whose arrays.npz has all keys, else Unavailable."""
    for tid in best_trials(study, k=len(study.trials))["trial_id"]:
        arr = study.arrays(tid)
        if arr is not None and all(k in arr for k in keys):
            return tid, arr
    raise Unavailable(f"no finished trial stored {', '.join(keys)} in arrays.npz")


def _learning(study: Study) -> Callable[[Section], None]:
    def build(sec: Section) -> None:
        data = learning_curve_data(study)
        if data.empty:
            raise Unavailable("no epochs.parquet (or it is empty)")
        sec.add_figure(learning_curve_figure(data))

    return build


def _f1(study: Study) -> Callable[[Section], None]:
    def build(sec: Section) -> None:
        data = f1_distribution_data(study)
        if data.empty:
            raise Unavailable("no finished trial with f1_macro")
        sec.add_figure(f1_distribution_figure(data))

    return build


def _numbering(study: Study) -> Callable[[Section], None]:
    def build(sec: Section) -> None:
        data = numbering_scatter_data(study)
        if data.empty:
            raise Unavailable("no finished trial recorded f1_macro_skill_relabelled")
        sec.add_text(
            "Each trial is also scored on its validation molecules renumbered at random (a "
            "fixed seed), put through its atom order as a user's molecule would be. Points "
            "far below the diagonal learned the data file's carbon numbering rather than "
            "chemistry; canonical trials lie on it by construction."
        )
        sec.add_figure(numbering_scatter_figure(data))

    return build


def _inversion(study: Study) -> Callable[[Section], None]:
    def build(sec: Section) -> None:
        data = inversion_error_data(study)
        if data.empty:
            raise Unavailable("no finished trial with inversion errors")
        note = tf32_note(data)
        if note:
            sec.add_warning(note)
        sec.add_figure(inversion_error_figure(data))

    return build


def _zfree(study: Study) -> Callable[[Section], None]:
    def build(sec: Section) -> None:
        tid, arr = _best_with(study, "z_free_sample")
        sec.add_figure(zfree_qq_figure(zfree_qq_data(arr["z_free_sample"]), tid))
        sec.add_figure(zfree_histogram_figure(arr["z_free_sample"], tid))
        summ = _stats.zfree_summary(study)
        if not summ.empty:
            sec.add_table(
                summ,
                "Per-sample Z_free mean and std over the validation set "
                "(Table 3; ideal mean 0 and std 1)",
            )
        sec.add_table(
            _stats.zfree_normality(study),
            "Normality of Z_free: Shapiro–Wilk (≤ 5000-value subsample) and "
            "Anderson–Darling test any normal; KS tests N(0, 1) itself",
        )

    return build


def _cd(study: Study) -> Callable[[Section], None]:
    def build(sec: Section) -> None:
        best = best_trials(study, k=len(study.trials))["trial_id"]
        arrays = {}
        for tid in best:
            arr = study.arrays(tid)
            if arr is not None and "cd_radii" in arr:
                arrays[tid] = arr
            if len(arrays) == 3:
                break
        if not arrays:
            raise Unavailable("no finished trial stored cd_radii in arrays.npz")
        data = cd_curve_data(arrays)
        note = cd_gap_note(data)
        if note:
            sec.add_warning(note)
        sec.add_figure(cd_curve_figure(data))

    return build


def _generation(study: Study) -> Callable[[Section], None]:
    def build(sec: Section) -> None:
        tid, arr = _best_with(study, "bond_count_real", "bond_count_generated")
        sec.add_text(
            "Which correlation tests generation: only *_from_code, where the structure is "
            "proposed from the spectrum code alone (the scatter's first row). The plain "
            "bond_count_corr / aromatic_corr (the paper's description, the second row) "
            "invert the validation structure's own Y_latent, so they leak the true "
            "structure; *_true_z adds the true Z_free (invertibility); *_reference is the "
            "reference code's sign-of-x computation."
        )
        if "bond_count_generated_from_code" not in arr:
            sec.add_warning(
                f"Trial {tid} was recorded before revstudy kept the structures generated from "
                "the code alone, so its scatter shows only the paper's measure: the table "
                "below still gives its recorded code-alone r."
            )
        sec.add_figure(count_scatter_figure(count_scatter_data(arr), tid))
        variants = _stats.generation_variants(study)
        if len(variants):
            sec.add_table(
                variants,
                "Pearson r of real and generated bond and aromatic counts on the validation "
                "molecules, by how the structure was generated (best trials; the first row "
                "of each trial is the test of generation)",
            )
        sec.add_table(
            _stats.count_correlations(study),
            "Correlation of real and generated counts, by how the structure was generated "
            "(as in the scatter above), with paired bootstrap 95 % CIs (paper, own "
            "Y_latent and sampled Z_free: bonds r = "
            f"{PAPER_FIGURES['bond_count_corr'][0]:.3f}, aromatic r = "
            f"{PAPER_FIGURES['aromatic_corr'][0]:.3f} over ten runs)",
        )

    return build


def _baseline(study: Study) -> Callable[[Section], None]:
    def build(sec: Section) -> None:
        repeats = study.study_info.repeats
        if repeats < 2:
            sec.add_text(
                "Each configuration ran on one split, so there are no repeats to test a "
                "difference with: launch with --repeats 3 (the default space's setting), "
                "or retrain the winner with `revstudy train --repeats 10 --test`."
            )
            return
        sec.add_table(
            _stats.compare_to_baseline(study),
            "Top configurations (a) vs the paper baseline (b) over repeated splits: "
            "Welch's t-test, Mann–Whitney U, Cohen's d and Hedges' g",
        )

    return build


def build_sections(study: Study) -> list[Section]:
    """All report sections in page order (a failing one carries its reason)."""
    with _only_damage_warnings():
        try:
            importances = _stats.param_importances(study)
        except Exception as exc:
            importances = pd.DataFrame([{"param": "", "note": f"{type(exc).__name__}: {exc}"}])
        figs: dict | Exception
        try:
            figs = optuna_figures(study, importances)
        except Exception as exc:
            figs = exc
    specs: list[tuple[str, str, Callable[[Section], None]]] = [
        ("answer", "Answer: best settings vs. the paper's", _answer(study)),
        ("summary", "Study summary", _summary(study)),
        ("history", "Optimization history", _optuna_section(figs, "history")),
        ("parallel", "Parallel coordinates", _optuna_section(figs, "parallel")),
        ("importance", "Hyperparameter importance", _importance(importances, figs)),
        ("slice", "Slice plots", _optuna_section(figs, "slice")),
        ("contour", "Contour plots", _optuna_section(figs, "contour")),
    ]
    if study.is_multi_objective:
        specs.append(("pareto", "Pareto front", _optuna_section(figs, "pareto")))
    specs += [
        ("learning", "Learning curves", _learning(study)),
        ("f1", "F1 vs. baselines", _f1(study)),
        ("numbering", "Numbering: skill renumbered", _numbering(study)),
        ("inversion", "Inversion error", _inversion(study)),
        ("zfree", "Z_free vs. N(0, 1)", _zfree(study)),
        ("cd", "Conditional deviation", _cd(study)),
        ("generation", "Generated structures", _generation(study)),
        ("baseline", "Top configurations vs. paper baseline", _baseline(study)),
    ]
    return [_guard(Section(sid, title), fn) for sid, title, fn in specs]


def write_report(
    study_path: str | Path,
    out: str | Path | None = None,
    compare: Sequence[str | Path] = (),
) -> Path:
    """Write STUDY/report.html (or `out`) and return its path; `compare` adds a section that
    sets other studies' answers beside this one's."""
    study = load_study(study_path)
    others = [load_study(p) for p in compare]
    dest = Path(out) if out is not None else study.path / "report.html"
    if dest.is_dir():
        raise IsADirectoryError(
            f"--out {dest}: is a directory; give a file name such as {dest / 'report.html'}"
        )
    sections = build_sections(study)  # first: it finds the damaged arrays the banner names
    banner = ""
    if study.partial:
        counts = study.state_counts
        running = int(counts.get("RUNNING", 0)) + int(counts.get("PENDING", 0))
        banner = (
            f"Partial results: {running} trial(s) still running or pending; "
            "numbers and rankings will change."
        )
    elif not study.trials.empty and study.finished.empty:
        banner = "No trial finished: see the failed-trials table in the study summary."
    if study.damaged:
        damaged = "; ".join(f"{name}: {why}" for name, why in sorted(study.damaged.items()))
        banner = f"{banner} Damaged files: {damaged}.".strip()
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if others:
        sections.insert(
            1, _guard(Section("compare", "Studies side by side"), _compare(study, others))
        )
    page = render_page(
        f"revstudy report: {study.name}",
        sections,
        banner,
        meta=f"{study.path.resolve()} · generated {now}",
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)  # never leave a half-written copy behind
    return dest
