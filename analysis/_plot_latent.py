"""Z_free against N(0, 1) (section 2.3) and conditional deviation over radii (2.4-2.5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy import stats

from revstudy.paper import PAPER_CD  # Table 4 of the paper

from ._style import COLORS, finish

__all__ = [
    "PAPER_CD",
    "cd_curve_data",
    "cd_curve_figure",
    "cd_gap_note",
    "zfree_histogram_figure",
    "zfree_qq_data",
    "zfree_qq_figure",
]


def zfree_qq_data(z: np.ndarray, max_points: int = 2000) -> pd.DataFrame:
    """Theoretical N(0, 1) quantiles against sorted Z_free (scipy.stats.probplot).

    Thinned to `max_points` evenly spaced quantiles so the figure stays small.
    """
    z = np.asarray(z, dtype=float).ravel()
    z = z[np.isfinite(z)]
    if len(z) == 0:
        return pd.DataFrame(columns=["theoretical", "sample"])
    (osm, osr), _ = stats.probplot(z, dist="norm")
    idx = np.unique(np.linspace(0, len(z) - 1, min(max_points, len(z))).astype(int))
    return pd.DataFrame({"theoretical": osm[idx], "sample": osr[idx]})


def zfree_qq_figure(data: pd.DataFrame, trial_id: str) -> go.Figure:
    """QQ plot: points on the diagonal mean Z_free ~ N(0, 1); a flatter slope = std < 1."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=data["theoretical"],
            y=data["sample"],
            mode="markers",
            name="Z_free quantiles",
            marker={"size": 4, "color": COLORS["completed"]},
        )
    )
    lim = float(np.nanmax(np.abs(data[["theoretical", "sample"]].to_numpy()))) if len(data) else 3
    fig.add_trace(
        go.Scatter(
            x=[-lim, lim],
            y=[-lim, lim],
            mode="lines",
            name="N(0, 1) ideal",
            line={"color": COLORS["random"], "dash": "dash"},
        )
    )
    fig.update_xaxes(title_text="N(0, 1) quantile (unitless)")
    fig.update_yaxes(title_text="Z_free quantile (unitless)")
    return finish(fig, f"Z_free QQ plot against N(0, 1), trial {trial_id} (section 2.3)")


def zfree_histogram_figure(z: np.ndarray, trial_id: str) -> go.Figure:
    """Density histogram of Z_free with the N(0, 1) density and the fitted normal."""
    z = np.asarray(z, dtype=float).ravel()
    z = z[np.isfinite(z)]
    fig = go.Figure()
    fig.add_trace(
        go.Histogram(
            x=z,
            histnorm="probability density",
            nbinsx=60,
            name="Z_free",
            marker_color=COLORS["completed"],
            opacity=0.7,
        )
    )
    lim = max(4.0, float(np.abs(z).max()) if len(z) else 4.0)
    grid = np.linspace(-lim, lim, 200)
    fig.add_trace(
        go.Scatter(
            x=grid,
            y=stats.norm.pdf(grid),
            name="N(0, 1)",
            line={"color": COLORS["random"], "dash": "dash"},
        )
    )
    if len(z) > 1:
        mu, sd = float(z.mean()), float(z.std(ddof=1))
        fig.add_trace(
            go.Scatter(
                x=grid,
                y=stats.norm.pdf(grid, mu, sd),
                name=f"fitted N({mu:.3f}, {sd:.3f}²)",
                line={"color": COLORS["fit"]},
            )
        )
    fig.update_xaxes(title_text="Z_free value (unitless)")
    fig.update_yaxes(title_text="probability density (1 / unit)")
    return finish(fig, f"Z_free distribution, trial {trial_id} (section 2.3)")


def cd_curve_data(arrays: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    """Tidy (source, variant, measure, radius, value) rows; `arrays` maps trial id → npz.

    The paper's Table 4 is added as source "paper" (variant "local", its Eq. 1-2).
    """
    rows = []
    for tid, arr in arrays.items():
        if "cd_radii" not in arr:
            continue
        radii = np.asarray(arr["cd_radii"], dtype=float)
        for variant in ("local", "prior"):
            for measure in ("cd", "rcd"):
                key = f"{measure}_{variant}"
                if key in arr:
                    for r, v in zip(radii, np.asarray(arr[key], dtype=float), strict=False):
                        rows.append((f"trial {tid}", variant, measure, float(r), float(v)))
    for r, (cd, rcd) in PAPER_CD.items():
        rows.append(("paper", "local", "cd", r, cd))
        rows.append(("paper", "local", "rcd", r, rcd))
    return pd.DataFrame(rows, columns=["source", "variant", "measure", "radius", "value"])


def cd_gap_note(data: pd.DataFrame, factor: float = 5.0) -> str:
    """Why a trial's CD is far from the paper's, when it is (more than `factor` times at the
    largest radius, either way); '' otherwise."""
    local = data[(data["variant"] == "local") & (data["measure"] == "cd")]
    if local.empty:
        return ""
    top = float(local["radius"].max())
    at = local[local["radius"] == top].set_index("source")["value"]
    paper = float(at.get("paper", PAPER_CD.get(top, (np.nan,))[0]))
    trials = at.drop("paper", errors="ignore")
    if trials.empty or not np.isfinite(paper) or paper <= 0:
        return ""
    ratio = trials / paper
    off = ratio[(ratio > factor) | (ratio < 1 / factor)]
    if off.empty:
        return ""
    worst = off.abs().idxmax()
    return (
        f"CD at ε = {top:g}: {worst} gives {float(at[worst]):.4g}, {float(ratio[worst]):.3g}× "
        f"the paper's {paper:.4g}. CD sums |Δx| over the 1024 inputs of a structure, so it "
        "scales with how far the inverse pass strays from [0, 1] when Z_free moves (weak "
        "x-range/density terms, short training); the paper's figure is one validation "
        "example of its own model. rCD, divided by the reconstruction's size, is the "
        "comparable measure."
    )


def cd_curve_figure(data: pd.DataFrame) -> go.Figure:
    """CD (absolute) and rCD (relative) against ε on log-x axes; paper in grey."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["CD(ε), absolute", "rCD(ε), relative"])
    palette = [COLORS["completed"], COLORS["stopped"], COLORS["fit"], "#8c564b", "#e377c2"]
    sources = list(dict.fromkeys(data["source"]))
    for col, measure in enumerate(("cd", "rcd"), start=1):
        for si, src in enumerate(sources):
            for variant in ("local", "prior"):
                g = data[
                    (data["source"] == src)
                    & (data["variant"] == variant)
                    & (data["measure"] == measure)
                ].sort_values("radius")
                if g.empty:
                    continue
                color = COLORS["paper"] if src == "paper" else palette[si % len(palette)]
                fig.add_trace(
                    go.Scatter(
                        x=g["radius"],
                        y=g["value"],
                        mode="lines+markers",
                        name=f"{src} {variant}",
                        legendgroup=f"{src} {variant}",
                        showlegend=col == 1,
                        line={"color": color, "dash": "dot" if variant == "prior" else "solid"},
                    ),
                    row=1,
                    col=col,
                )
        fig.update_xaxes(title_text="radius ε (unitless, log scale)", type="log", row=1, col=col)
    fig.update_yaxes(title_text="CD (ℓ1 of input, a.u.)", row=1, col=1)
    fig.update_yaxes(title_text="rCD (fraction of ‖X‖₁)", row=1, col=2)
    return finish(
        fig,
        "Conditional deviation over radii; local = solid, prior = dotted "
        "(Table 4, sections 2.4-2.5)",
        460,
    )
