"""The report's first section: the answer to "which settings beat the paper's, by how much,
and how sure are we?", then the commands that confirm and use it.

Data (`headline_data`) is separate from its HTML (`render_headline`), so tests check the
numbers. Only trials that ran to their last epoch are compared (a trial ASHA stopped early
has values from fewer epochs); the best of many trials on one validation split overstates
its lead (winner's curse), which is why the headline always ends with the command that
re-trains it on fresh splits and scores the held-out test split.
"""

from __future__ import annotations

import html
import json
import math
import shlex
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from revstudy.paper import PAPER_F1
from revstudy.studyfolder import REFERENCE_FILE, not_infeasible

from ._load import Study

__all__ = [
    "ANSWER_FIGURES",
    "baseline_ahead",
    "comparison_table",
    "headline_data",
    "numbering_data",
    "reference_note",
    "render_headline",
]


def _completed(study: Study, metric: str) -> pd.DataFrame:
    df = study.trials[study.trials["state"] == "COMPLETED"]
    return df.dropna(subset=[metric]) if metric in df.columns else df.iloc[0:0]


def difference_ci(
    a: float, sa: float, na: int, b: float, sb: float, nb: int, level: float = 0.95
) -> tuple[float, float] | None:
    """Welch's confidence interval of a − b from means, standard deviations (ddof 0, as
    trials record them) and repeat counts; None when either side has a single repeat."""
    if na < 2 or nb < 2 or not all(map(math.isfinite, (sa, sb))):
        return None
    va, vb = sa**2 * na / (na - 1) / na, sb**2 * nb / (nb - 1) / nb  # variance of each mean
    se = math.sqrt(va + vb)
    if se == 0:
        return (a - b, a - b)
    dof = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    return (a - b - half, a - b + half)


def headline_data(study: Study) -> dict[str, Any]:
    """The best completed trial against the paper baseline, on the first objective."""
    obj = study.objectives[0]
    metric = obj.metric
    done = _completed(study, metric)
    out: dict[str, Any] = {
        "metric": metric,
        "mode": obj.mode,
        "n_completed": len(done),
        "n_trials": len(study.trials),
        "repeats": study.study_info.repeats,
        "test_fraction": study.study_info.test_fraction,
        "best": None,
        "baseline": None,
        "fixed": study.fixed,
        "baseline_settings": study.baseline_settings,
        "numbering": None,
        "data_path": study.study_info.data.path if study.study_info.data else None,
        "constraints": list(study.study_info.constraints),
        "n_infeasible": int((~not_infeasible(done)).sum()),
    }
    # an infeasible trial (it broke the study's constraints) is never the answer
    ranked = done[not_infeasible(done)].sort_values(metric, ascending=obj.ascending)
    if ranked.empty:
        return out
    best = ranked.iloc[0]
    base = done[done["is_baseline"].astype(bool)]
    n = out["repeats"]

    def side(row: pd.Series) -> dict[str, Any]:
        std = row.get(f"{metric}_std")
        return {
            "trial_id": str(row["trial_id"]),
            "value": float(row[metric]),
            "std": float(std) if std is not None and pd.notna(std) else math.nan,
            "params": study.trial_params(row),
            "is_baseline": bool(row.get("is_baseline", False)),
            "figures": {k: _num(row, k) for k in ANSWER_FIGURES},
            "chance": {k: _num(row, k) for k in RETRIEVAL_CHANCE},
        }

    out["best"] = side(best)
    out["numbering"] = numbering_data(best, None if base.empty else base.iloc[0], study)
    if not base.empty:
        b = side(base.iloc[0])
        out["baseline"] = b
        diff = out["best"]["value"] - b["value"]
        out["difference"] = diff
        out["relative"] = diff / abs(b["value"]) if b["value"] else math.nan
        out["ci95"] = difference_ci(
            out["best"]["value"], out["best"]["std"], n, b["value"], b["std"], n
        )
        at = np.flatnonzero(ranked["trial_id"] == b["trial_id"])
        out["rank_of_baseline"] = int(at[0]) + 1 if len(at) else None  # None: infeasible
    return out


# Beside the objective in the answer: figures that compare across code sizes and rows
# (F1 at the paper's 128 bits with what a perfect code of the trial's size could score
# there; F1 over the bins with a positive, whose count differs between data files), and
# whether the structure is retrieved from its spectrum (a trial can win on F1 and lose there)
ANSWER_FIGURES = {
    "f1_macro_128": "macro F1 at 128 bits",
    "f1_macro_128_ceiling": "ceiling of its code size",
    "f1_macro_present": "macro F1, bins with a positive",
    "retrieval_mrr": "retrieval MRR",
    "retrieval_top10": "retrieval top-10",
}


# What a random ranking of the same library scores, recorded with each trial's retrieval
# figures (`revstudy.training.retrieval.rank_stats`): the floor the two columns must clear
RETRIEVAL_CHANCE = ("retrieval_mrr_random", "retrieval_top10_random", "retrieval_library")


def _num(row: pd.Series, key: str) -> float:
    v = row.get(key)
    try:
        return float(v) if v is not None and pd.notna(v) else math.nan
    except (TypeError, ValueError):
        return math.nan


def numbering_data(best: pd.Series, base: pd.Series | None, study: Study) -> dict[str, Any] | None:
    """How much of the best trial's and the baseline's skill survives renumbering: each
    side's figure in the data file's numbering beside the same on the validation molecules
    renumbered at random (issue #21), with the atom order and relabel setting they ran
    with. None when the trials carry no `*_relabelled` figure (older studies)."""
    metric = study.objectives[0].metric.removesuffix("_relabelled")
    if f"{metric}_relabelled" not in study.trials.columns:
        metric = "f1_macro_skill"
    if f"{metric}_relabelled" not in study.trials.columns:
        return None

    def one(row: pd.Series) -> dict[str, Any]:
        def num(key: str) -> float:
            v = row.get(key)
            return float(v) if v is not None and pd.notna(v) else math.nan

        return {
            "trial_id": str(row["trial_id"]),
            "own": num(metric),
            "relabelled": num(f"{metric}_relabelled"),
            "atom_order": str(study.setting(row, "atom_order", "source")),
            "relabel": bool(study.setting(row, "relabel", False)),
        }

    return {
        "metric": metric,
        "best": one(best),
        "baseline": None if base is None else one(base),
    }


def _numbering_table(n: dict[str, Any] | None) -> str:
    """The best trial and the baseline in the file's numbering and renumbered."""
    if n is None:
        return ""
    e = html.escape
    sides = [("best", n["best"])] + ([("paper baseline", n["baseline"])] if n["baseline"] else [])
    rows = "".join(
        f"<tr><td>{e(label)}</td><td>{_fmt(v['own'])}</td><td>{_fmt(v['relabelled'])}</td>"
        f"<td>{e(v['atom_order'])}</td><td>{'yes' if v['relabel'] else 'no'}</td></tr>"
        for label, v in sides
    )
    return (
        f'<table class="params"><thead><tr><th>{e(n["metric"])}</th>'
        "<th>in the data file's numbering</th><th>renumbered at random</th>"
        "<th>atom order</th><th>relabel</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        '<p class="caption">What survives another carbon numbering: a model that learned the '
        "data file's numbering instead of chemistry scores near chance on renumbered "
        "molecules, as on every SMILES a user types; a canonical atom order gives the same "
        f"figure both ways by construction. The paper's own figures (macro F1 {PAPER_F1}) are "
        "in the data file's numbering.</p>"
    )


def _figures_table(d: dict[str, Any]) -> str:
    """The best trial and the baseline on the figures beside the objective, and one line
    naming each figure on which the baseline is ahead (so no table far below hides it)."""
    best, base = d["best"], d.get("baseline")
    e = html.escape
    keys = [k for k in ANSWER_FIGURES if math.isfinite(best["figures"].get(k, math.nan))]
    if not keys:
        return ""
    sides = [("best", best)] + ([("paper baseline", base)] if base else [])
    head = "".join(f"<th>{e(ANSWER_FIGURES[k])}</th>" for k in keys)
    rows = "".join(
        f"<tr><td>{e(label)}</td>"
        + "".join(f"<td>{_fmt(v['figures'][k])}</td>" for k in keys)
        + "</tr>"
        for label, v in sides
    )
    note = ""
    ahead = baseline_ahead(d)
    if ahead:
        note = (
            '<p class="headline">The paper baseline is ahead on '
            + "; ".join(
                f"{e(ANSWER_FIGURES[k])} ({_fmt(base['figures'][k])} against "  # type: ignore[index]
                f"{_fmt(best['figures'][k])})"
                for k in ahead
            )
            + ".</p>"
        )
    return (
        f'<table class="params"><thead><tr><th></th>{head}</tr></thead><tbody>{rows}</tbody>'
        '</table><p class="caption">Macro F1 at 128 bits compares code sizes on the paper\'s '
        "scale; the ceiling is what a perfect code of the trial's size scores there on the "
        "same rows (bins without a positive count 0 for any code). Retrieval ranks each "
        "validation structure among the trial's distinct training and validation structures "
        f"(never the held-out test ones) by the predicted spectrum.{_chance(best)}"
        "</p>" + note
    )


def _chance(best: dict[str, Any]) -> str:
    """The caption's sentence on what a random ranking scores, where the trial recorded it."""
    chance = best.get("chance", {})
    mrr, top10, n = (chance.get(k, math.nan) for k in RETRIEVAL_CHANCE)
    if not all(math.isfinite(v) for v in (mrr, top10, n)) or n < 1:  # unrecorded or damaged
        return ""
    return (
        f" A random ranking of those {int(n)} structures scores MRR {_fmt(mrr)} and top-10 "
        f"{_fmt(top10)}."
    )


def baseline_ahead(d: dict[str, Any]) -> list[str]:
    """The answer's figures (higher is better, ceilings aside) on which the paper baseline
    beats the best trial."""
    best, base = d["best"], d.get("baseline")
    if base is None or best["is_baseline"]:
        return []
    return [
        k
        for k in ANSWER_FIGURES
        if k != "f1_macro_128_ceiling"
        and math.isfinite(best["figures"].get(k, math.nan))
        and math.isfinite(base["figures"].get(k, math.nan))
        and base["figures"][k] > best["figures"][k]
    ]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _certainty(d: dict[str, Any]) -> str:
    """How sure the lead is: the CI of the difference, or why there is none."""
    ci = d.get("ci95")
    if ci is None:
        return "one split each, so no error bar: the difference may be split noise"
    return (
        f"95 % CI of the difference over {d['repeats']} seeded splits each: "
        f"{ci[0]:+.4g} to {ci[1]:+.4g}"
        + (" (excludes 0)" if ci[0] > 0 or ci[1] < 0 else " (includes 0: not shown to differ)")
    )


def _sentence(d: dict[str, Any]) -> str:
    """The one-sentence answer, worded for: no baseline, baseline best, or a trial beats it."""
    metric, best, base = d["metric"], d["best"], d["baseline"]
    e = html.escape
    better = "higher" if d["mode"] == "max" else "lower"
    if base is None:
        return _constrained(d) + (
            f"Best of {_pool(d)}: <b>{e(best['trial_id'])}</b> with "
            f"{e(metric)} = <b>{best['value']:.4g}</b> ({better} is better). The paper "
            "baseline did not finish in this study (or was left out with --no-baseline), "
            "so there is no comparison."
        )
    if best["is_baseline"]:
        return _constrained(d) + (
            f"The paper configuration is still the best of {_pool(d)}: "
            f"{e(metric)} = <b>{best['value']:.4g}</b> ({better} is better)."
        )
    rel = d["relative"]
    rank = d["rank_of_baseline"]
    return (
        _constrained(d) + f"Best of {_pool(d)}: "
        f"<b>{e(best['trial_id'])}</b>, "
        f"{e(metric)} = <b>{best['value']:.4g}</b> against the paper baseline's "
        f"{base['value']:.4g}: <b>{d['difference']:+.4g}</b>"
        # against a baseline near zero (chance) a relative change says nothing: left out
        + (f" ({rel:+.0%})" if math.isfinite(rel) and abs(rel) <= 5 else "")
        + f" ({better} is better); {_certainty(d)}. "
        + (
            f"The baseline ranks {rank} of {d['n_completed'] - d.get('n_infeasible', 0)}."
            if rank is not None
            else "The baseline breaks the study's constraints."
        )
    )


def _constrained(d: dict[str, Any]) -> str:
    """The constraints a recommendation meets (the study's), as the sentence's opening."""
    if not d.get("constraints"):
        return ""
    return f"Meeting {html.escape(', '.join(d['constraints']))}: "


def _pool(d: dict[str, Any]) -> str:
    """The trials the answer was chosen from: those that meet the constraints, if any
    did not (they are never recommended)."""
    done, broke = d["n_completed"], d.get("n_infeasible", 0)
    if broke:
        return f"the {done - broke:,} of {done:,} completed trials that meet them"
    return f"{done:,} completed trials"  # 10,000, not 10000: studies at GPU rates


def _caveat(d: dict[str, Any]) -> str:
    """Why the lead is optimistic (winner's curse) and what confirms it; plain text."""
    return (
        _baseline_settings(d)
        + "Chosen as the best of many trials on the validation splits, its lead is optimistic; "
        "the held-out test split"
        + (f" ({d['test_fraction']:.0%} of the structures)" if d.get("test_fraction") else "")
        + " was not used by any trial. Confirm on fresh splits and the test split:"
    )


def _baseline_settings(d: dict[str, Any]) -> str:
    """What the paper baseline runs with besides its searched values: the space's fixed
    settings, except those its `baseline:` block sets (the paper's protocol); plain text."""
    own = d.get("baseline_settings", {})
    fixed = {k: v for k, v in d.get("fixed", {}).items() if k not in own}
    parts = [
        f"{', '.join(f'{k} {v}' for k, v in group.items())} ({why})"
        for group, why in (
            (fixed, "this space's fixed settings"),
            (own, "the paper's protocol, as the space's baseline block asks"),
        )
        if group
    ]
    return f"The paper baseline runs with {' and '.join(parts)}. " if parts else ""


def _params_table(best: dict[str, Any], base: dict[str, Any] | None) -> str:
    """The best settings beside the paper's, one row per parameter; empty without params."""
    e = html.escape
    keys = sorted(set(best["params"]) | set((base or {}).get("params", {})))
    rows = "".join(
        f"<tr><td>{e(k)}</td><td>{_fmt(best['params'].get(k, '–'))}</td>"
        f"<td>{_fmt((base or {}).get('params', {}).get(k, '–'))}</td></tr>"
        for k in keys
    )
    if not rows:
        return ""
    return (
        '<table class="params"><thead><tr><th>parameter</th><th>best</th>'
        f"<th>paper baseline</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def render_headline(d: dict[str, Any], study_name: str, storage_hint: str) -> str:
    """HTML of the answer: one sentence, the best settings beside the paper's, the commands."""
    e = html.escape
    if d["best"] is None and d.get("n_infeasible"):
        return (
            f'<p class="headline">None of the {d["n_completed"]:,} completed trials meets '
            f"{e(', '.join(d['constraints']))}: nothing to recommend.</p>"
        )
    if d["best"] is None:
        return (
            f'<p class="headline">No trial has finished yet ({d["n_trials"]:,} started): '
            "nothing to compare with the paper baseline.</p>"
        )
    table = (
        _numbering_table(d.get("numbering"))
        + _figures_table(d)
        + _params_table(d["best"], d["baseline"])
    )
    data = d.get("data_path")
    with_data = f" --data {shlex.quote(str(data))}" if data else ""
    commands = (
        f"revstudy export {shlex.quote(study_name)}{storage_hint} --out runs/best.yaml\n"
        f"revstudy train --config runs/best.yaml --repeats 10 --test{with_data} --out runs/best"
    )
    return (
        f'<p class="headline">{_sentence(d)}</p>{table}'
        f'<p class="caption">{e(_caveat(d))}</p><pre class="cmd">{e(commands)}</pre>'
    )


def comparison_table(studies: list[Study]) -> pd.DataFrame:
    """One row per study: its objective, best completed trial and the paper baseline, so
    several studies (other spaces, samplers, objectives) can be read side by side."""
    rows = []
    for st in studies:
        d = headline_data(st)
        best, base = d["best"] or {}, d["baseline"] or {}
        ci = d.get("ci95")
        rows.append(
            {
                "study": st.name,
                "space": str(st.study_info.space.get("name", "")),
                "objective": f"{d['metric']} ({d['mode']})",
                "completed": d["n_completed"],
                "repeats": d["repeats"],
                "best trial": best.get("trial_id", "–"),
                "best": best.get("value", math.nan),
                "paper baseline": base.get("value", math.nan),
                "difference": d.get("difference", math.nan),
                "95 % CI": "–" if ci is None else f"{ci[0]:+.3g} to {ci[1]:+.3g}",
            }
        )
    return pd.DataFrame(rows)


def reference_note(study: Study) -> str:
    """One sentence on the dedicated predictor's scores (`revstudy reference --study`), read
    from STUDY/reference.json; '' when the study has none (or it is unreadable)."""
    try:
        doc = json.loads((study.path / REFERENCE_FILE).read_text())
        m, name = doc["metrics"], str(doc["predictor"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    metric = study.objectives[0].metric
    keys = ["f1_macro_128", "f1_macro_present", "f1_macro_skill", "retrieval_mrr"]
    keys = [k for k in (metric, *keys) if k in m]
    shown = ", ".join(f"{k} {float(m[k]):.4g}" for k in dict.fromkeys(keys))
    return (
        f"A dedicated 13C predictor, {name}, on this study's data file at {doc.get('y_dim')} "
        f"bits: {shown} ({doc.get('caveat', '')})."
    )


def warm_start_note(study: Study) -> str:
    """One sentence on the earlier studies whose trials seeded this study's sampler
    (`launch --warm-start`): they are history, not this study's results, so every figure
    and table of the report leaves them out; '' for a cold study."""
    sources = study.study_info.warm_start
    if not sources:
        return ""
    parts = []
    for w in sources:
        tail = f", {w.n_left_out} left out ({w.left_out_text()})" if w.n_left_out else ""
        differs = f", used despite: {'; '.join(w.differs)}" if w.differs else ""
        parts.append(f"{w.used} finished trial(s) of study {w.study}{tail}{differs}")
    return (
        "Warm start: the sampler began with "
        + "; ".join(parts)
        + ". They guided where this study searched; they are not its trials, and no table, "
        "figure or recommendation here includes them."
    )
