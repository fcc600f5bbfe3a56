"""Generated structures against real ones: bond and aromatic counts (section 2.6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy import stats

from ._stats import GENERATION_VARIANTS, STORED_GENERATION_VARIANTS
from ._style import COLORS, finish

__all__ = ["count_scatter_data", "count_scatter_figure"]

_QUANTITIES = (("bond_count", "bonds (count of ones)"), ("aromatic", "aromatic bonds (count)"))


def count_scatter_data(arrays: dict[str, np.ndarray]) -> pd.DataFrame:
    """Tidy (quantity, generated_by, real, generated) rows from one trial's arrays.

    Structures generated from the spectrum code alone (the test of generation) come first,
    then the paper's measure (own Y_latent, sampled Z_free); a variant the trial did not
    store (trials recorded before revstudy kept the code-alone counts) is left out.
    """
    frames = []
    for q, _ in _QUANTITIES:
        real = arrays.get(f"{q}_real")
        if real is None:
            continue
        for suffix in STORED_GENERATION_VARIANTS:
            gen = arrays.get(f"{q}_generated{suffix}")
            if gen is None:
                continue
            n = min(len(real), len(gen))
            frames.append(
                pd.DataFrame(
                    {
                        "quantity": q,
                        "generated_by": GENERATION_VARIANTS[suffix],
                        "real": np.asarray(real[:n], dtype=float),
                        "generated": np.asarray(gen[:n], dtype=float),
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=["quantity", "generated_by", "real", "generated"])
    return pd.concat(frames, ignore_index=True)


def count_scatter_figure(data: pd.DataFrame, trial_id: str, seed: int = 0) -> go.Figure:
    """Real vs generated counts with the least-squares line (scipy.stats.linregress), a row
    per way of generating (in the data's order) and a column per quantity.

    Counts are integers, so points get a small horizontal jitter to show their density;
    the fit uses the unjittered values.
    """
    ways = list(dict.fromkeys(data["generated_by"])) or [GENERATION_VARIANTS[""]]
    fig = make_subplots(
        rows=len(ways),
        cols=len(_QUANTITIES),
        subplot_titles=[f"{lbl}, {way}" for way in ways for _, lbl in _QUANTITIES],
        vertical_spacing=0.5 / len(ways),
    )
    rng = np.random.default_rng(seed)
    for row, way in enumerate(ways, start=1):
        for col, (q, label) in enumerate(_QUANTITIES, start=1):
            g = data[(data["quantity"] == q) & (data["generated_by"] == way)]
            if g.empty:
                continue
            x, y = g["real"].to_numpy(), g["generated"].to_numpy()
            fig.add_trace(
                go.Scatter(
                    x=x + rng.uniform(-0.2, 0.2, len(x)),
                    y=y,
                    mode="markers",
                    name=f"{q}, {way} (validation molecules)",
                    opacity=0.5,
                    marker={"size": 5, "color": COLORS["completed"]},
                ),
                row=row,
                col=col,
            )
            if len(x) > 2 and np.ptp(x) > 0 and np.ptp(y) > 0:
                fit = stats.linregress(x, y)
                xs = np.array([x.min(), x.max()])
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=fit.intercept + fit.slope * xs,
                        mode="lines",
                        name=f"{q}, {way}: r = {fit.rvalue:.3f}",
                        line={"color": COLORS["fit"]},
                    ),
                    row=row,
                    col=col,
                )
            fig.update_xaxes(title_text=f"real {label}", row=row, col=col)
            fig.update_yaxes(title_text=f"generated {label}", row=row, col=col)
    fig.update_annotations(font_size=12)
    return finish(
        fig, f"Real vs generated structures, trial {trial_id} (section 2.6)", 80 + 380 * len(ways)
    )
