"""Final-metric distributions: F1 against chance and the paper (2.1), inversion error (2.2)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from revstudy.paper import PAPER_FIGURES, paper_range

from ._load import Study
from ._style import COLORS, PAPER_F1, finish

__all__ = [
    "PAPER_INV_ERROR",
    "f1_distribution_data",
    "f1_distribution_figure",
    "inversion_error_data",
    "inversion_error_figure",
]

#: Section 2.2: ranges over ten runs of the max and mean reconstruction error.
PAPER_INV_ERROR = {k: paper_range(k)[1:] for k in ("inv_error_max", "inv_error_mean")}


def _finished(study: Study, cols: list[str]) -> pd.DataFrame:
    df = study.finished
    present = [c for c in cols if c in df.columns]
    return df[["trial_id", "state", "is_baseline", *present]].reset_index(drop=True)


#: The paper's chance level for its 128-bit code (section 2.1): a predictor that sets each
#: bit at the code's density scores F1 0.0643; skill = (F1 - chance) / (1 - chance).
PAPER_CHANCE_F1 = PAPER_FIGURES["f1_random_micro"][0]


def f1_distribution_data(study: Study) -> pd.DataFrame:
    """Per finished trial: f1_macro, its skill, the trial's random-predictor F1 and y_dim."""
    df = _finished(study, ["f1_macro", "f1_random_baseline", "f1_macro_skill", "config/y_dim"])
    if "f1_macro" not in df.columns:
        return df.iloc[0:0]
    df = df.rename(columns={"config/y_dim": "y_dim"})
    return df.dropna(subset=["f1_macro"])


def _paper_band(fig: go.Figure, lo: float, hi: float, mean: float, what: str) -> None:
    """The paper's range (shaded) and mean (dashed) on an F1-like axis, with one label:
    the band is narrow, and a label of its own collided with the mean's."""
    fig.add_vrect(x0=lo, x1=hi, fillcolor=COLORS["paper"], opacity=0.15, line_width=0)
    fig.add_vline(
        x=mean,
        line={"color": COLORS["paper"], "dash": "dash"},
        annotation_text=f"paper {what} {mean:.4g} (range {lo:.3g}–{hi:.3g})",
        annotation_position="top right",
    )


def _skill(f1: float) -> float:
    return (f1 - PAPER_CHANCE_F1) / (1 - PAPER_CHANCE_F1)


def f1_distribution_figure(data: pd.DataFrame) -> go.Figure:
    """Histogram of F1 with the random baseline and the paper's mean and range marked.

    Like with like: when trials predict codes of other sizes than the paper's 128 bits,
    raw F1 is not comparable (chance F1 is 0.11 at 64 bits, 0.06 at 128), so the figure
    shows skill over chance for every trial and the paper's band converted to skill."""
    sizes = set(data["y_dim"].dropna().astype(int)) if "y_dim" in data else {128}
    if sizes != {128} and "f1_macro_skill" in data and data["f1_macro_skill"].notna().any():
        return _skill_figure(data, sorted(sizes))
    fig = go.Figure()
    stopped = data["state"] == "STOPPED_EARLY"
    for name, rows, color in (
        ("completed trials", data[~stopped], COLORS["completed"]),
        ("stopped early (F1 at their last epoch)", data[stopped], COLORS["stopped"]),
    ):
        if len(rows):
            fig.add_trace(
                go.Histogram(
                    x=rows["f1_macro"], name=name, nbinsx=30, marker_color=color, opacity=0.75
                )
            )
    fig.update_layout(barmode="overlay")
    mean, lo, hi = PAPER_F1
    _paper_band(fig, lo, hi, mean, "F1")
    base = data[data["is_baseline"]]
    for v in base["f1_macro"]:
        fig.add_vline(
            x=float(v),
            line={"color": COLORS["baseline"]},
            annotation_text="baseline trial",
            annotation_position="bottom right",
        )
    if "f1_random_baseline" in data.columns and data["f1_random_baseline"].notna().any():
        r = float(data["f1_random_baseline"].mean())
        fig.add_vline(
            x=r,
            line={"color": COLORS["random"], "dash": "dot"},
            annotation_text=f"random predictor, macro F1 {r:.3f}",
            annotation_position="top right",
        )
    fig.update_xaxes(title_text="F1 (macro) on validation, unitless")
    fig.update_yaxes(title_text="trials (count)")
    return finish(fig, "F1 of finished trials vs. random predictor and paper (section 2.1)")


def _skill_figure(data: pd.DataFrame, sizes: list[int]) -> go.Figure:
    fig = go.Figure()
    for y_dim in sizes:
        g = data[data["y_dim"] == y_dim]
        for state, label, pattern in (("COMPLETED", "", ""), ("STOPPED_EARLY", ", stopped", "/")):
            rows = g[g["state"] == state]
            if len(rows):
                fig.add_trace(
                    go.Histogram(
                        x=rows["f1_macro_skill"],
                        name=f"{y_dim}-bit code{label}",
                        nbinsx=30,
                        opacity=0.7,
                        marker_pattern_shape=pattern,
                    )
                )
    mean, lo, hi = PAPER_F1
    _paper_band(fig, _skill(lo), _skill(hi), _skill(mean), "F1 as skill")
    for v in data.loc[data["is_baseline"], "f1_macro_skill"].dropna():
        fig.add_vline(
            x=float(v),
            line={"color": COLORS["baseline"]},
            annotation_text="baseline trial",
            annotation_position="bottom right",
        )
    fig.add_vline(x=0.0, line={"color": COLORS["random"], "dash": "dot"},
                  annotation_text="chance (skill 0)", annotation_position="top right")  # fmt: skip
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title_text="F1 skill over chance, (F1 − chance) / (1 − chance)")
    fig.update_yaxes(title_text="trials (count)")
    return finish(
        fig,
        f"F1 skill of finished trials ({', '.join(map(str, sizes))}-bit codes; raw F1 is not "
        "comparable across code sizes) vs. the paper's 128-bit F1 as skill (section 2.1)",
    )


def inversion_error_data(study: Study) -> pd.DataFrame:
    """Tidy (trial_id, measure, value) rows of the reconstruction errors."""
    cols = ["inv_error_max", "inv_error_p95", "inv_error_mean"]
    df = _finished(study, cols)
    if "tf32" in study.finished.columns:  # TF32 CUDA kernels: ~100x larger errors
        df["tf32"] = study.finished["tf32"].fillna(False).astype(bool).to_numpy()
    else:
        df["tf32"] = False
    present = [c for c in cols if c in df.columns]
    tidy = df.melt(["trial_id", "state", "is_baseline", "tf32"], present, "measure", "value")
    return tidy.dropna(subset=["value"]).reset_index(drop=True)


def tf32_note(data: pd.DataFrame) -> str:
    """A sentence for the inversion section when some trials ran with TF32 ('' if none)."""
    ids = sorted(set(data.loc[data["tf32"], "trial_id"])) if "tf32" in data else []
    if not ids:
        return ""
    return (
        f"{len(ids)} trial(s) ran with TF32 CUDA kernels (allow_tf32: true): "
        f"{', '.join(ids[:8])}{' …' if len(ids) > 8 else ''}. TF32 rounds every convolution "
        "to a 10-bit mantissa; their inversion errors (~1e-4) are not comparable with full "
        "fp32 ones (~1e-6)."
    )


def inversion_error_figure(data: pd.DataFrame) -> go.Figure:
    """Strip plot per error measure on a log axis, with the paper's ranges shaded."""
    fig = go.Figure()
    measures = list(dict.fromkeys(data["measure"]))
    for m in measures:
        g = data[data["measure"] == m]
        fig.add_trace(
            go.Box(
                y=g["value"],
                name=m,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                text=[
                    f"{t} (TF32)" if f else t for t, f in zip(g["trial_id"], g["tf32"], strict=True)
                ],
                hovertemplate="trial %{text}<br>%{y:.2e}<extra></extra>",
            )
        )
    for m, (lo, hi) in PAPER_INV_ERROR.items():
        if m in measures:
            i = measures.index(m)
            fig.add_shape(
                type="rect",
                x0=i - 0.45,
                x1=i + 0.45,
                y0=lo,
                y1=hi,
                fillcolor=COLORS["paper"],
                opacity=0.25,
                line_width=0,
            )
    positive = data["value"] > 0
    fig.update_yaxes(
        title_text="|x − f⁻¹(f(x))| (input units)",
        type="log" if bool(positive.all()) and len(data) else "linear",
    )
    fig.update_xaxes(title_text="error measure")
    fig.update_layout(showlegend=False)
    return finish(fig, "Inversion (reconstruction) error; grey = paper's range (section 2.2)")
