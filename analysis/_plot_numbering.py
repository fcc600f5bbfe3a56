"""Skill in the data file's carbon numbering against the same on renumbered molecules.

A network can learn the file's numbering instead of chemistry (issue #21): such a trial
sits far below the diagonal (its skill vanishes when the molecules are renumbered, as
every SMILES a user types is); a `canonical` trial sits on it by construction."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ._load import Study
from ._style import COLORS, finish

__all__ = ["numbering_scatter_data", "numbering_scatter_figure"]

OWN, MOVED = "f1_macro_skill", "f1_macro_skill_relabelled"


def numbering_scatter_data(study: Study) -> pd.DataFrame:
    """Per finished trial with both figures: skill in the file's numbering (`own`) and
    renumbered (`renumbered`), its atom order and relabel setting."""
    df = study.finished
    if OWN not in df.columns or MOVED not in df.columns:
        return pd.DataFrame(columns=["trial_id", "own", "renumbered", "atom_order", "relabel"])
    rows = [row for _, row in df.iterrows()]
    out = pd.DataFrame(
        {
            "trial_id": df["trial_id"].astype(str),
            "state": df["state"],
            "is_baseline": df["is_baseline"].astype(bool),
            "own": pd.to_numeric(df[OWN], errors="coerce"),
            "renumbered": pd.to_numeric(df[MOVED], errors="coerce"),
            "atom_order": [str(study.setting(r, "atom_order", "source")) for r in rows],
            "relabel": [bool(study.setting(r, "relabel", False)) for r in rows],
        }
    )
    return out.dropna(subset=["own", "renumbered"]).reset_index(drop=True)


def numbering_scatter_figure(data: pd.DataFrame) -> go.Figure:
    """One point per trial, by atom order; the diagonal is 'nothing lost to numbering'."""
    fig = go.Figure()
    low = float(min(data["own"].min(), data["renumbered"].min(), 0.0))
    high = float(max(data["own"].max(), data["renumbered"].max(), 0.01))
    fig.add_trace(
        go.Scatter(
            x=[low, high],
            y=[low, high],
            mode="lines",
            line={"color": COLORS["paper"], "dash": "dash"},
            name="same skill renumbered",
        )
    )
    colors = {"canonical": COLORS["completed"], "source": COLORS["stopped"]}
    for (order, relabel), part in data.groupby(["atom_order", "relabel"], sort=True):
        fig.add_trace(
            go.Scatter(
                x=part["own"],
                y=part["renumbered"],
                mode="markers",
                marker={
                    "size": [14 if b else 9 for b in part["is_baseline"]],
                    "color": colors.get(str(order), COLORS["fit"]),
                    "symbol": "diamond" if relabel else "circle",
                },
                text=[
                    f"{t}{' (paper baseline)' if b else ''}"
                    for t, b in zip(part["trial_id"], part["is_baseline"], strict=True)
                ],
                hovertemplate="%{text}<br>file's numbering %{x:.4f}<br>renumbered %{y:.4f}",
                name=f"{order}{', relabel' if relabel else ''}",
            )
        )
    fig.update_xaxes(title="F1 skill in the data file's numbering")
    fig.update_yaxes(title="F1 skill, molecules renumbered at random")
    return finish(fig, "How much of each trial's skill survives another numbering")
