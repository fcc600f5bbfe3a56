"""Generated structures against real ones: bond and aromatic counts (section 2.6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy import stats

from ._style import COLORS, finish

__all__ = ["count_scatter_data", "count_scatter_figure"]

_QUANTITIES = (("bond_count", "bonds (count of ones)"), ("aromatic", "aromatic bonds (count)"))


def count_scatter_data(arrays: dict[str, np.ndarray]) -> pd.DataFrame:
    """Tidy (quantity, real, generated) rows from one trial's arrays."""
    frames = []
    for q, _ in _QUANTITIES:
        real, gen = arrays.get(f"{q}_real"), arrays.get(f"{q}_generated")
        if real is None or gen is None:
            continue
        n = min(len(real), len(gen))
        frames.append(
            pd.DataFrame(
                {
                    "quantity": q,
                    "real": np.asarray(real[:n], dtype=float),
                    "generated": np.asarray(gen[:n], dtype=float),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["quantity", "real", "generated"])
    return pd.concat(frames, ignore_index=True)


def count_scatter_figure(data: pd.DataFrame, trial_id: str, seed: int = 0) -> go.Figure:
    """Real vs generated counts with the least-squares line (scipy.stats.linregress).

    Counts are integers, so points get a small horizontal jitter to show their density;
    the fit uses the unjittered values.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=[lbl for _, lbl in _QUANTITIES])
    rng = np.random.default_rng(seed)
    for col, (q, label) in enumerate(_QUANTITIES, start=1):
        g = data[data["quantity"] == q]
        if g.empty:
            continue
        x, y = g["real"].to_numpy(), g["generated"].to_numpy()
        fig.add_trace(
            go.Scatter(
                x=x + rng.uniform(-0.2, 0.2, len(x)),
                y=y,
                mode="markers",
                name=f"{q} (validation molecules)",
                opacity=0.5,
                marker={"size": 5, "color": COLORS["completed"]},
            ),
            row=1,
            col=col,
        )
        if len(x) > 2 and np.ptp(x) > 0:
            fit = stats.linregress(x, y)
            xs = np.array([x.min(), x.max()])
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=fit.intercept + fit.slope * xs,
                    mode="lines",
                    name=f"{q} fit: r = {fit.rvalue:.3f}",
                    line={"color": COLORS["fit"]},
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text=f"real {label}", row=1, col=col)
        fig.update_yaxes(title_text=f"generated {label}", row=1, col=col)
    return finish(fig, f"Real vs generated structures, trial {trial_id} (section 2.6)", 460)
