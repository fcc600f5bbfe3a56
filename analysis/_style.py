"""Shared look of the hand-drawn figures, so they match optuna.visualization's."""

from __future__ import annotations

import plotly.graph_objects as go

from revstudy.paper import paper_range

__all__ = ["COLORS", "PAPER_F1", "finish"]

COLORS = {
    "completed": "#1f77b4",
    "stopped": "#ff7f0e",
    "baseline": "#2ca02c",
    "paper": "#7f7f7f",
    "random": "#d62728",
    "fit": "#9467bd",
}
#: Section 2.1: F1 over ten random splits, mean and (min, max).
PAPER_F1 = paper_range("f1_macro")  # (mean, low, high) of the paper's macro F1


def finish(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    """Common layout: a title, white template, readable legend, fixed height."""
    fig.update_layout(
        title={"text": title},
        template="plotly_white",
        height=height,
        legend={"orientation": "h", "yanchor": "bottom", "y": -0.35},
        margin={"t": 60, "b": 90},
    )
    return fig
