"""Names shared by the study driver and its trials (light: no ray, no torch).

Kept apart from `study.py` so that a trial worker reads them without importing the driver.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "FINAL_KEY",
    "PER_EPOCH",
    "PER_EPOCH_METRICS",
    "STATE_FILE",
    "TRIAL_KEY",
    "public_params",
]

# objectives known every epoch (ASHA can use them) → the per-epoch report key holding them
PER_EPOCH = {
    "f1_macro": "val_f1_macro",
    "val_f1_macro": "val_f1_macro",
    "f1_macro_skill": "val_f1_skill",
    "val_f1_skill": "val_f1_skill",
    "val_loss": "val_loss",
    "retrieval_mrr": "val_retrieval_mrr",
    "val_retrieval_mrr": "val_retrieval_mrr",
}
PER_EPOCH_METRICS = tuple(PER_EPOCH)

# A trial continued by `revstudy resume` runs under a new Ray trial id; this config key
# carries the id of its folder (`trials/<id>/`), which holds its checkpoint and records.
TRIAL_KEY = "revstudy_trial"

# A trial's checkpoint in its folder: written every epoch, removed once the trial has ended.
STATE_FILE = "state.pt"

# Set to 1 in a trial's last report, after its full evaluation: the trial ran to the end
# (a trial that reports without it was stopped early by the scheduler).
FINAL_KEY = "revstudy_final"


def public_params(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's searched parameters, without revstudy's bookkeeping keys."""
    return {k: v for k, v in config.items() if k != TRIAL_KEY}
