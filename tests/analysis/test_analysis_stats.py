"""Statistics on inputs with known answers, and on the synthetic studies."""

from __future__ import annotations

import numpy as np
import pytest

import analysis

RNG = np.random.default_rng(42)


def _by_test(df):
    return df.set_index("test")


def test_normality_standard_normal_passes() -> None:
    res = _by_test(analysis.normality_tests(RNG.normal(0, 1, 3000)))
    assert (res["pvalue"] > 0.01).all(), res


def test_normality_exponential_fails() -> None:
    res = _by_test(analysis.normality_tests(RNG.exponential(1, 3000)))
    assert (res["pvalue"] <= 0.01).all(), res


def test_normal_but_narrow_fails_only_ks() -> None:
    # Table 3's situation: normal in shape, std ≈ 0.59 instead of 1.
    res = _by_test(analysis.normality_tests(RNG.normal(0.0858, 0.5861, 3000)))
    assert res.loc["shapiro", "pvalue"] > 0.01
    assert res.loc["ks_n01", "pvalue"] < 1e-6


def test_shapiro_subsamples_to_5000() -> None:
    res = _by_test(analysis.normality_tests(RNG.normal(size=7000)))
    assert res.loc["shapiro", "n"] == 5000 and res.loc["ks_n01", "n"] == 7000


def test_normality_too_few() -> None:
    res = analysis.normality_tests(np.array([1.0, np.nan]))
    assert res["pvalue"].isna().all() and "too few" in res["note"].iloc[0]


def test_per_sample_summary() -> None:
    res = analysis.per_sample_summary(np.array([0.0, 0.2]), np.array([1.0, 1.0])).set_index(
        "statistic"
    )
    assert res.loc["Z_free mean", "mean"] == pytest.approx(0.1)
    assert res.loc["Z_free std", "deviation_from_ideal"] == pytest.approx(0.0)
    assert res.loc["Z_free std", "paper_mean"] == 0.5861


def test_correlation_perfect() -> None:
    x = RNG.poisson(20, 200).astype(float)
    res = analysis.correlation_tests(x, 2 * x + 1, n_resamples=199).set_index("method")
    assert res["r"].to_numpy() == pytest.approx([1.0, 1.0])
    assert (res["pvalue"] < 1e-10).all()


def test_correlation_independent_ci_covers_zero() -> None:
    x, y = RNG.poisson(20, 300).astype(float), RNG.poisson(20, 300).astype(float)
    res = analysis.correlation_tests(x, y, n_resamples=499)
    assert (res["ci_low"] < 0).all() and (res["ci_high"] > 0).all()
    assert (res["r"].abs() < 0.2).all()


def test_correlation_constant() -> None:
    res = analysis.correlation_tests(np.ones(10), np.arange(10.0))
    assert res["r"].isna().all() and "constant" in res["note"].iloc[0]


def test_compare_identical_groups() -> None:
    a = np.array([0.16, 0.17, 0.18, 0.175])
    res = analysis.compare_groups(a, a.copy())
    assert res["welch_p"] == pytest.approx(1.0) and res["mannwhitney_p"] == pytest.approx(1.0)
    assert res["cohens_d"] == pytest.approx(0.0)


def test_compare_different_groups_effect_size() -> None:
    res = analysis.compare_groups(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]))
    assert res["cohens_d"] == pytest.approx(-3.0)  # pooled std 1
    assert res["hedges_g"] == pytest.approx(-3.0 * (1 - 3 / 15))
    far = analysis.compare_groups(RNG.normal(0.3, 0.01, 10), RNG.normal(0.17, 0.01, 10))
    assert far["welch_p"] < 1e-6 and far["mannwhitney_p"] < 1e-3


def test_compare_not_enough_repeats() -> None:
    res = analysis.compare_groups(np.array([0.2]), np.array([0.1, 0.2]))
    assert "not enough repeats" in res["note"] and np.isnan(res["welch_p"])


def test_compare_to_baseline_on_study(study_dir) -> None:
    s = analysis.load_study(study_dir("single"))
    res = analysis.compare_to_baseline(s, top=2)
    assert set(res["baseline_id"]) == {"t000"} and len(res) == 2 * 4
    f1 = res[res["metric"] == "f1_macro"]
    assert (f1["welch_p"] < 0.01).all() and (f1["hedges_g"] > 0).all()


def test_study_level_stats(study_dir) -> None:
    s = analysis.load_study(study_dir("single"))
    norm = analysis.zfree_normality(s, top=2)
    assert norm["trial_id"].nunique() == 2
    assert (norm[norm["test"] == "ks_n01"]["pvalue"] < 1e-6).all()
    corr = analysis.count_correlations(s, top=1, n_resamples=199)
    paper = corr[corr["generated"] == "own Y_latent, sampled Z_free (the paper's)"]
    assert set(paper["quantity"]) == {"bond_count", "aromatic"} and (paper["r"] > 0.3).all()
    code = corr[(corr["generated"] == "from the spectrum code alone")]
    assert len(code) == 2 * 2  # pearson and spearman of both quantities
    arr = s.arrays(code["trial_id"].iloc[0])
    pearson = code[(code["method"] == "pearson") & (code["quantity"] == "bond_count")]
    r = np.corrcoef(arr["bond_count_real"], arr["bond_count_generated_from_code"])[0, 1]
    assert pearson["r"].iloc[0] == pytest.approx(r, abs=1e-12)
    assert len(analysis.zfree_summary(s, top=1)) == 2


def test_importances_single(study_dir) -> None:
    imp = analysis.param_importances(analysis.load_study(study_dir("single")))
    fan = imp[imp["evaluator"] == "fanova"].sort_values("importance", ascending=False)
    assert fan["param"].iloc[0] == "lr"  # F1 was generated from lr only
    assert set(imp["evaluator"]) == {"ped_anova", "fanova"}


def test_importances_multi_objective(study_dir) -> None:
    imp = analysis.param_importances(analysis.load_study(study_dir("multi")))
    assert set(imp["objective"]) == {"f1_macro", "inv_error_max"}


def test_importances_too_few(study_dir) -> None:
    imp = analysis.param_importances(analysis.load_study(study_dir("failed")))
    assert len(imp) == 1 and "too few complete trials" in imp["note"].iloc[0]


def test_raw_f1_is_compared_only_at_the_baselines_code_size(study_dir) -> None:
    """Issue #22.6: a 64-bit trial's raw F1 against the 128-bit baseline's compares chance
    levels (0.11 vs 0.06), not models; its skill and F1 at 128 bits are compared."""
    s = analysis.load_study(study_dir("single"))
    top = analysis.compare_to_baseline(s, top=2)["trial_id"].unique()
    sizes = [64 if t == top[0] else 128 for t in s.trials["trial_id"]]
    s.trials = s.trials.assign(**{"config/y_dim": sizes})
    res = analysis.compare_to_baseline(s, top=2)
    assert "f1_macro" not in set(res.loc[res["trial_id"] == top[0], "metric"])
    assert "f1_macro" in set(res.loc[res["trial_id"] == top[1], "metric"])
    assert len(res[res["trial_id"] == top[0]]) == 3  # the other figures stay


def test_generation_variants_name_each_trials_recorded_correlations(study_dir) -> None:
    """The report's table of how each structure was generated: the trials' own recorded
    figures, the best trial first, the code-alone test first within a trial."""
    from analysis._stats import generation_variants

    s = analysis.load_study(study_dir("single"))
    s.trials = s.trials.drop(columns=[c for c in s.trials if "_corr" in c]).copy()
    assert generation_variants(s).empty  # nothing recorded: no table
    n = len(s.trials)
    s.trials = s.trials.assign(
        bond_count_corr=np.linspace(0.1, 0.2, n),
        aromatic_corr=np.linspace(0.3, 0.4, n),
        bond_count_corr_from_code=np.linspace(-0.1, 0.0, n),
        aromatic_corr_from_code=np.nan,  # a variant recorded for one quantity only
        bond_count_corr_true_z=1.0,
        aromatic_corr_true_z=1.0,
    ).copy()  # one block again (pandas warns of a fragmented frame otherwise)
    table = generation_variants(s, top=2)
    best = analysis.best_trials(s, k=2)["trial_id"].tolist()
    assert table["trial_id"].tolist() == [best[0]] * 3 + [best[1]] * 3
    assert table["generated"].tolist()[:3] == [
        "from the spectrum code alone",
        "own Y_latent, sampled Z_free (the paper's)",
        "own Y_latent and Z_free (invertibility)",
    ]
    row = s.trials.set_index("trial_id").loc[best[1]]
    got = table[table.trial_id == best[1]].set_index("generated")
    assert got.loc["from the spectrum code alone", "bond_count"] == row["bond_count_corr_from_code"]
    assert np.isnan(got.loc["from the spectrum code alone", "aromatic"])
    assert got.loc["own Y_latent, sampled Z_free (the paper's)", "aromatic"] == row["aromatic_corr"]
