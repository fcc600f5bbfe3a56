"""Learning curves: F1 and losses by epoch (paper Fig. 3 / Table 1), one line per trial."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ._load import Study
from ._style import COLORS, finish

__all__ = ["learning_curve_data", "learning_curve_figure"]

_PANELS = (
    ("val_f1_macro", "validation F1 (macro)"),
    ("train_loss", "training loss"),
    ("val_loss", "validation loss"),
)


def learning_curve_data(study: Study, max_trials: int = 30) -> pd.DataFrame:
    """Tidy (trial_id, epoch, metric, value, state, early_stopped) rows, mean over repeats.

    Averaging repeats keeps one line per configuration; at most `max_trials` trials are
    kept (finished ones first) so the figure stays readable for large studies.
    """
    ep = study.epochs
    cols = ["trial_id", "epoch", "metric", "value", "state", "early_stopped", "is_baseline"]
    if ep.empty:
        return pd.DataFrame(columns=cols)
    metrics = [m for m, _ in _PANELS if m in ep.columns]
    mean = ep.groupby(["trial_id", "epoch"], as_index=False)[metrics].mean()
    tidy = mean.melt(["trial_id", "epoch"], metrics, "metric", "value").dropna(subset=["value"])
    meta = study.trials[["trial_id", "state", "is_baseline"]]
    tidy = tidy.merge(meta, on="trial_id", how="left")
    tidy["state"] = tidy["state"].fillna("UNKNOWN")
    tidy["is_baseline"] = tidy["is_baseline"].fillna(False).astype(bool)
    tidy["early_stopped"] = tidy["state"] == "STOPPED_EARLY"
    order = study.trials.assign(_f=~study.trials["state"].isin(("COMPLETED", "STOPPED_EARLY")))
    keep = order.sort_values("_f", kind="stable")["trial_id"].head(max_trials)
    tidy = tidy[tidy["trial_id"].isin(set(keep))]
    return tidy[cols].sort_values(["trial_id", "metric", "epoch"]).reset_index(drop=True)


def learning_curve_figure(data: pd.DataFrame) -> go.Figure:
    """Three panels; early-stopped trials dashed and orange with an ✕ at the last epoch."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for _, t in _PANELS])
    seen: set[str] = set()
    for col, (metric, label) in enumerate(_PANELS, start=1):
        for tid, g in data[data["metric"] == metric].groupby("trial_id", sort=False):
            stopped = bool(g["early_stopped"].iloc[0])
            base = bool(g["is_baseline"].iloc[0])
            color = COLORS["baseline"] if base else COLORS["stopped" if stopped else "completed"]
            name = (
                f"{tid}" + (" (baseline)" if base else "") + (" (stopped early)" if stopped else "")
            )
            fig.add_trace(
                go.Scatter(
                    x=g["epoch"],
                    y=g["value"],
                    name=name,
                    legendgroup=str(tid),
                    showlegend=str(tid) not in seen,
                    mode="lines+markers",
                    line={"color": color, "dash": "dash" if stopped else "solid", "width": 1.5},
                    marker={
                        "size": [4] * (len(g) - 1) + [10 if stopped else 4],
                        "symbol": ["circle"] * (len(g) - 1) + ["x" if stopped else "circle"],
                    },
                    opacity=0.8,
                    hovertemplate=f"trial {tid}<br>epoch %{{x}}<br>{label} %{{y:.4f}}"
                    + "<extra></extra>",
                ),
                row=1,
                col=col,
            )
            seen.add(str(tid))
        fig.update_xaxes(title_text="epoch", dtick=1, row=1, col=col)
        values = data.loc[data["metric"] == metric, "value"]
        # losses on a log axis: one diverged trial (losses of 1e7) cannot flatten the
        # others' curves into a line at the bottom
        log = "F1" not in label and len(values) > 0 and bool((values > 0).all())
        unit = " (unitless)" if "F1" in label else (" (a.u., log scale)" if log else " (a.u.)")
        fig.update_yaxes(title_text=label + unit, type="log" if log else "linear", row=1, col=col)
    return finish(fig, "Learning curves (mean over repeats; dashed ✕ = stopped early by ASHA)", 460)
