"""Statistical tests behind the report's claims (paper sections 2.1, 2.3 and 2.6).

Every test comes from scipy.stats; only the effect sizes (Cohen's d, Hedges' g), which
scipy lacks, are computed here. Each public function returns a tidy DataFrame (one row
per trial x test) so the report can show it and a user can filter it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from revstudy.paper import PAPER_FIGURES
from revstudy.studyfolder import Objective

from ._load import Study, best_trials
from ._optuna_views import FANOVA_TRIALS, sampled

__all__ = [
    "PAPER_ZFREE",
    "compare_groups",
    "compare_to_baseline",
    "correlation_tests",
    "count_correlations",
    "normality_tests",
    "param_importances",
    "per_sample_summary",
    "zfree_normality",
    "zfree_summary",
]

#: Table 3 of the paper: (mean, std) over the validation set of the per-sample statistic.
PAPER_ZFREE = {  # Table 3: (mean, std) over samples of the per-sample mean and std
    "Z_free mean": (PAPER_FIGURES["z_free_mean_mean"][0], PAPER_FIGURES["z_free_mean_std"][0]),
    "Z_free std": (PAPER_FIGURES["z_free_std_mean"][0], PAPER_FIGURES["z_free_std_std"][0]),
}
_IDEAL_ZFREE = {"Z_free mean": 0.0, "Z_free std": 1.0}
#: Metrics whose per-repeat values trials store as `repeat_<metric>`.
# compared across repeats: skill (not raw F1, which favours coarse codes) and F1 at the
# paper's 128 bits come first; raw f1_macro stays for studies written before they existed
REPEAT_METRICS = (
    "f1_macro_skill",
    "f1_macro_skill_relabelled",
    "f1_macro_128",
    "f1_macro",
    "bond_count_corr",
    "aromatic_corr",
    "inv_error_max",
)
# figures on the trial's own code size: comparable with the baseline's only at the same
# y_dim (chance F1 is 0.11 at 64 bits, 0.06 at 128); skill and F1 at 128 bits always are
OWN_CODE_SIZE = ("f1_macro",)
_SHAPIRO_MAX = 5000


def normality_tests(x: np.ndarray, *, max_n: int = _SHAPIRO_MAX, seed: int = 0) -> pd.DataFrame:
    """Shapiro–Wilk, Anderson–Darling and Kolmogorov–Smirnov tests of one sample.

    Shapiro–Wilk and Anderson–Darling ask "is it normal at all" (mean and std fitted);
    KS asks the stronger question of the paper's ideal, "is it N(0, 1)". Shapiro–Wilk
    is run on a random subsample of at most `max_n` values because its p-value is not
    accurate beyond 5000.
    """
    x = np.asarray(x, dtype=float).ravel()
    x = x[np.isfinite(x)]
    rows: list[dict[str, Any]] = []
    if len(x) < 3:
        note = f"too few values (n={len(x)}; need ≥ 3)"
        for test in ("shapiro", "anderson", "ks_n01"):
            rows.append(
                {
                    "test": test,
                    "n": len(x),
                    "statistic": np.nan,
                    "pvalue": np.nan,
                    "null": "",
                    "note": note,
                }
            )
        return pd.DataFrame(rows)
    sub = x
    if len(x) > max_n:
        sub = np.random.default_rng(seed).choice(x, size=max_n, replace=False)
    sw = stats.shapiro(sub)
    rows.append(
        {
            "test": "shapiro",
            "n": len(sub),
            "statistic": float(sw.statistic),
            "pvalue": float(sw.pvalue),
            "null": "normal (any mean, std)",
            "note": "subsample" if len(sub) < len(x) else "",
        }
    )
    rows.append(_anderson(x))
    ks = stats.kstest(x, "norm")
    rows.append(
        {
            "test": "ks_n01",
            "n": len(x),
            "statistic": float(ks.statistic),
            "pvalue": float(ks.pvalue),
            "null": "N(0, 1)",
            "note": "",
        }
    )
    return pd.DataFrame(rows)


def _anderson(x: np.ndarray) -> dict[str, Any]:
    """Anderson–Darling with the p-value scipy interpolates from Stephens' tables.

    scipy ≥ 1.17 gives a p-value with method="interpolate" (clipped to [0.01, 0.15], so
    the note says when it is a bound); older scipy gives critical values instead, and
    we report the 5 % one.
    """
    row: dict[str, Any] = {"test": "anderson", "n": len(x), "null": "normal (any mean, std)"}
    try:
        res = stats.anderson(x, dist="norm", method="interpolate")
    except TypeError:  # scipy < 1.17: no `method`, critical values only
        res = stats.anderson(x, dist="norm")
        crit = dict(zip(res.significance_level, res.critical_values, strict=True))[5.0]
        verdict = "reject" if res.statistic > crit else "do not reject"
        row.update(
            statistic=float(res.statistic),
            pvalue=np.nan,
            note=f"5 % critical value {crit:.3f}: {verdict}",
        )
        return row
    p = float(res.pvalue)
    note = "p ≥ 0.15 (table bound)" if p >= 0.15 else "p ≤ 0.01 (table bound)" if p <= 0.01 else ""
    row.update(statistic=float(res.statistic), pvalue=p, note=note)
    return row


def per_sample_summary(means: np.ndarray, stds: np.ndarray) -> pd.DataFrame:
    """Table 3: mean and std over the validation set of the per-sample Z_free mean/std."""
    rows = []
    for label, values in (("Z_free mean", means), ("Z_free std", stds)):
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        paper_mean, paper_std = PAPER_ZFREE[label]
        rows.append(
            {
                "statistic": label,
                "n": len(v),
                "mean": float(v.mean()) if len(v) else np.nan,
                "std": float(v.std(ddof=1)) if len(v) > 1 else np.nan,
                "ideal_mean": _IDEAL_ZFREE[label],
                "deviation_from_ideal": float(v.mean()) - _IDEAL_ZFREE[label] if len(v) else np.nan,
                "paper_mean": paper_mean,
                "paper_std": paper_std,
            }
        )
    return pd.DataFrame(rows)


def _trials_with_arrays(study: Study, top: int, keys: Sequence[str]) -> list[tuple[str, dict]]:
    """The `top` best trials that stored all `keys` in arrays.npz (others are skipped)."""
    out = []
    for tid in best_trials(study, k=max(len(study.trials), 1))["trial_id"]:
        arr = study.arrays(tid)
        if arr is not None and all(k in arr for k in keys):
            out.append((tid, arr))
        if len(out) >= top:
            break
    return out


def zfree_normality(study: Study, top: int = 3) -> pd.DataFrame:
    """normality_tests on `z_free_sample` of the `top` best trials that stored it."""
    frames = [
        normality_tests(arr["z_free_sample"]).assign(trial_id=tid)
        for tid, arr in _trials_with_arrays(study, top, ["z_free_sample"])
    ]
    return _concat(frames, "trial_id")


def zfree_summary(study: Study, top: int = 3) -> pd.DataFrame:
    """per_sample_summary (Table 3) for the `top` best trials."""
    keys = ["z_free_sample_means", "z_free_sample_stds"]
    frames = [
        per_sample_summary(arr[keys[0]], arr[keys[1]]).assign(trial_id=tid)
        for tid, arr in _trials_with_arrays(study, top, keys)
    ]
    return _concat(frames, "trial_id")


def _pearson(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Vectorised Pearson r, so bootstrap evaluates all resamples in one call."""
    return np.asarray(stats.pearsonr(x, y, axis=axis).statistic)


def _spearman(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho is Pearson's r of the (tie-averaged) ranks; vectorised likewise."""
    return _pearson(stats.rankdata(x, axis=axis), stats.rankdata(y, axis=axis), axis=axis)


def correlation_tests(
    real: np.ndarray,
    generated: np.ndarray,
    *,
    n_resamples: int = 999,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Pearson and Spearman correlation with p-values and paired bootstrap CIs.

    The paper reports only r (0.19 bonds, 0.18 aromatic over ten runs); the CI says
    whether one run's r is distinguishable from 0 and from the paper's value.
    """
    x = np.asarray(real, dtype=float).ravel()
    y = np.asarray(generated, dtype=float).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    rows = []
    for method, fn, test in (
        ("pearson", _pearson, stats.pearsonr),
        ("spearman", _spearman, stats.spearmanr),
    ):
        row: dict[str, Any] = {
            "method": method,
            "n": len(x),
            "r": np.nan,
            "pvalue": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "note": "",
        }
        if len(x) < 3:
            row["note"] = f"too few pairs (n={len(x)}; need ≥ 3)"
        elif np.ptp(x) == 0 or np.ptp(y) == 0:
            row["note"] = "constant input: correlation undefined"
        else:
            res = test(x, y)
            row.update(r=float(res.statistic), pvalue=float(res.pvalue))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # degenerate resamples → NaN CI, noted below
                boot = stats.bootstrap(
                    (x, y),
                    fn,
                    paired=True,
                    vectorized=True,
                    n_resamples=n_resamples,
                    confidence_level=confidence,
                    method="BCa",
                    rng=seed,
                )
            row.update(
                ci_low=float(boot.confidence_interval.low),
                ci_high=float(boot.confidence_interval.high),
            )
            if not np.isfinite(row["ci_low"]):
                row["note"] = "bootstrap CI undefined (degenerate resamples)"
        rows.append(row)
    return pd.DataFrame(rows)


GENERATION_VARIANTS = {  # metric suffix -> how the generated structure was made
    "_from_code": "from the spectrum code alone",
    "": "own Y_latent, sampled Z_free (the paper's)",
    "_true_z": "own Y_latent and Z_free (invertibility)",
}
#: the variants whose generated counts arrays.npz keeps (`<quantity>_generated<suffix>`),
#: the test of generation first; _true_z reconstructs the input, so it keeps none
STORED_GENERATION_VARIANTS = ("_from_code", "")


def count_correlations(study: Study, top: int = 3, n_resamples: int = 999) -> pd.DataFrame:
    """correlation_tests for bond counts and aromatic counts of the `top` best trials, for
    each way of generating that the trials stored (`generated`: GENERATION_VARIANTS)."""
    frames = []
    for quantity in ("bond_count", "aromatic"):
        for suffix in STORED_GENERATION_VARIANTS:
            keys = [f"{quantity}_real", f"{quantity}_generated{suffix}"]
            for tid, arr in _trials_with_arrays(study, top, keys):
                res = correlation_tests(arr[keys[0]], arr[keys[1]], n_resamples=n_resamples)
                frames.append(
                    res.assign(
                        trial_id=tid, quantity=quantity, generated=GENERATION_VARIANTS[suffix]
                    )
                )
    return _concat(frames, "trial_id", "quantity", "generated")


def generation_variants(study: Study, top: int = 3) -> pd.DataFrame:
    """The recorded real-vs-generated Pearson r of the `top` best trials, one row per trial
    and way of generating, for bond counts and aromatic counts: only the code-alone row
    tests generation; the others invert a structure's own latents. Empty where no trial
    recorded them."""
    rows = []
    for _, t in best_trials(study, k=top).iterrows():
        for suffix, how in GENERATION_VARIANTS.items():
            r = {q: t.get(f"{q}_corr{suffix}") for q in ("bond_count", "aromatic")}
            if all(v is None or pd.isna(v) for v in r.values()):
                continue
            rows.append({"trial_id": t["trial_id"], "generated": how, **r})
    return pd.DataFrame(rows, columns=["trial_id", "generated", "bond_count", "aromatic"])


def compare_groups(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Welch's t-test, Mann–Whitney U and Cohen's d / Hedges' g of a against b.

    With fewer than two values in a group neither test nor a standard deviation exists,
    so we say "not enough repeats" instead of returning a misleading number.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    out: dict[str, Any] = {
        "n_a": len(a),
        "n_b": len(b),
        "mean_a": float(a.mean()) if len(a) else np.nan,
        "mean_b": float(b.mean()) if len(b) else np.nan,
        "welch_t": np.nan,
        "welch_p": np.nan,
        "mannwhitney_u": np.nan,
        "mannwhitney_p": np.nan,
        "cohens_d": np.nan,
        "hedges_g": np.nan,
        "note": "",
    }
    if len(a) < 2 or len(b) < 2:
        out["note"] = f"not enough repeats (n={len(a)} vs {len(b)}; need ≥ 2 each)"
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero variance in both → NaN, noted below
        t = stats.ttest_ind(a, b, equal_var=False)
    u = stats.mannwhitneyu(a, b, alternative="two-sided")
    na, nb = len(a), len(b)
    pooled = np.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    d = (a.mean() - b.mean()) / pooled if pooled > 0 else np.nan
    g = d * (1 - 3 / (4 * (na + nb) - 9))  # small-sample correction (Hedges 1981)
    out.update(
        welch_t=float(t.statistic),
        welch_p=float(t.pvalue),
        mannwhitney_u=float(u.statistic),
        mannwhitney_p=float(u.pvalue),
        cohens_d=float(d),
        hedges_g=float(g),
    )
    if pooled == 0:
        out["note"] = "zero variance in both groups"
    return out


def compare_to_baseline(
    study: Study, top: int = 3, metrics: Sequence[str] = REPEAT_METRICS
) -> pd.DataFrame:
    """compare_groups of each top configuration's repeats against the paper baseline's.

    Rows have `trial_id` (a = the candidate) and `metric`; b is always the baseline.
    """
    base = study.trials[study.trials["is_baseline"]]
    if base.empty:
        return pd.DataFrame([{"trial_id": "", "metric": "", "note": "no baseline trial"}])
    base_id = str(base["trial_id"].iloc[0])
    base_arr = study.arrays(base_id) or {}
    base_code = study.setting(base.iloc[0], "y_dim", 128)
    cands = best_trials(study, k=len(study.trials))
    cands = cands[cands["trial_id"] != base_id].head(top)
    rows = []
    for _, cand in cands.iterrows():
        tid = cand["trial_id"]
        arr = study.arrays(tid) or {}
        for m in metrics:
            key = f"repeat_{m}"
            if key not in arr and key not in base_arr:
                continue  # a metric this study's version did not keep per repeat
            if m in OWN_CODE_SIZE and study.setting(cand, "y_dim", 128) != base_code:
                continue  # raw F1 of another code size: chance differs, so no comparison
            a, b = arr.get(key, np.array([])), base_arr.get(key, np.array([]))
            rows.append(
                {"trial_id": tid, "baseline_id": base_id, "metric": m, **compare_groups(a, b)}
            )
    if not rows:
        return pd.DataFrame([{"trial_id": "", "metric": "", "note": "no finished candidates"}])
    return pd.DataFrame(rows)


def _no_importance(note: str, objective: str = "", evaluator: str = "") -> pd.DataFrame:
    """One row with an empty param and the reason, so the report shows it instead of crashing."""
    return pd.DataFrame(
        [
            {
                "objective": objective,
                "evaluator": evaluator,
                "param": "",
                "importance": np.nan,
                "note": note,
            }
        ]
    )


def _importance_target(
    ostudy: Any, i: int, mode: str, ev_name: str
) -> Callable[[Any], float] | None:
    """Objective i as the evaluator needs it; None where Optuna's own default is right."""
    # PED-ANOVA looks at the best quantile, which depends on the direction; with a
    # target it assumes minimisation, so negate maximised objectives.
    sign = -1.0 if (mode == "max" and ev_name == "ped_anova") else 1.0
    if len(ostudy.directions) > 1 or sign < 0:
        return lambda t: sign * t.values[i]
    return None


def _importance_rows(
    ostudy: Any, obj: Objective, i: int, ev_name: str, ev: Any, n_trials: int, note: str = ""
) -> pd.DataFrame:
    """One evaluator's importances for objective i, or a row with the reason it failed."""
    from optuna.importance import get_param_importances

    target = _importance_target(ostudy, i, obj.mode, ev_name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = get_param_importances(ostudy, evaluator=ev, target=target)
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        return _no_importance(f"{type(exc).__name__}: {exc}", obj.metric, ev_name)
    if not imp:
        return _no_importance("no parameter varies", obj.metric, ev_name)
    return pd.DataFrame(
        {
            "objective": obj.metric,
            "evaluator": ev_name,
            "param": list(imp),
            "importance": list(imp.values()),
            "note": note,
            "n_trials": n_trials,  # finished trials behind the numbers
        }
    )


def param_importances(study: Study, min_trials: int = 4) -> pd.DataFrame:
    """Hyperparameter importance per objective from the Optuna record, with PED-ANOVA and fANOVA.

    Returns rows (objective, evaluator, param, importance, note, n_trials); fANOVA sees a
    seeded random `FANOVA_TRIALS` of the finished trials where there are more
    (`analysis._optuna_views`), and `n_trials` says how many. When an evaluator cannot run
    (no Optuna record, too few complete trials, one-valued params) the row has an empty
    param and the reason in `note`, so the report can show it rather than crash.
    """
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    try:
        ostudy = study.load_optuna()
    except ValueError as e:  # another study's record, or a damaged one
        return _no_importance(str(e))
    if ostudy is None:
        return _no_importance("no Optuna record (optuna.journal) in the study folder")
    complete = ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < min_trials:
        return _no_importance(
            f"too few complete trials in the Optuna record ({len(complete)}; need ≥ {min_trials})"
        )
    frames = []
    # fANOVA's forest costs ~ the square of its trials: a seeded sample past FANOVA_TRIALS
    fanova_study = sampled(ostudy, complete, FANOVA_TRIALS)
    used = min(len(complete), FANOVA_TRIALS)
    sample = f"a seeded random {used:,} of {len(complete):,} finished trials"
    sample = sample if used < len(complete) else ""
    for i, obj in enumerate(study.objectives):
        frames.append(
            _importance_rows(
                ostudy, obj, i, "ped_anova", PedAnovaImportanceEvaluator(), len(complete)
            )
        )
        fanova = FanovaImportanceEvaluator(seed=0)
        frames.append(_importance_rows(fanova_study, obj, i, "fanova", fanova, used, sample))
    return pd.concat(frames, ignore_index=True)


def _concat(frames: list[pd.DataFrame], *first: str) -> pd.DataFrame:
    """Concatenate per-trial frames and move the key columns to the front."""
    if not frames:
        return pd.DataFrame(columns=list(first))
    df = pd.concat(frames, ignore_index=True)
    return df[list(first) + [c for c in df.columns if c not in first]]
