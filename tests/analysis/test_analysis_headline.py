"""The report's answer section: best completed trial vs the paper baseline, with its CI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

import analysis
from analysis._headline import baseline_ahead, difference_ci, headline_data, render_headline


def test_difference_ci_matches_scipy_welch() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.2, 0.02, 5), rng.normal(0.17, 0.01, 4)
    lo, hi = difference_ci(a.mean(), a.std(), 5, b.mean(), b.std(), 4)
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    assert lo == pytest.approx(ci.low) and hi == pytest.approx(ci.high)
    assert difference_ci(0.2, 0.0, 1, 0.1, 0.01, 5) is None  # one split: no error bar


def test_headline_of_a_study_with_repeats(study_dir) -> None:
    s = analysis.load_study(study_dir("single"))
    s.trials = s.trials.assign(f1_macro_std=0.01)  # the synthetic study records std 0
    d = headline_data(s)
    done = s.trials[s.trials.state == "COMPLETED"]
    assert d["best"]["value"] == done["f1_macro"].max()  # completed trials only
    assert d["baseline"]["trial_id"] == "t000" and d["repeats"] == 3
    assert d["difference"] == pytest.approx(d["best"]["value"] - d["baseline"]["value"])
    lo, hi = d["ci95"]
    assert lo < d["difference"] < hi
    assert (lo, hi) == pytest.approx(
        difference_ci(d["best"]["value"], 0.01, 3, d["baseline"]["value"], 0.01, 3)
    )
    page = render_headline(d, "single", "")
    assert "against the paper baseline" in page and "95 % CI" in page
    assert "revstudy train --config runs/best.yaml --repeats 10 --test" in page


def test_headline_without_finished_trials_or_baseline(study_dir) -> None:
    failed = analysis.load_study(study_dir("failed"))
    d = headline_data(failed)
    assert d["best"] is None and "No trial has finished" in render_headline(d, "x", "")
    s = analysis.load_study(study_dir("single"))
    s.trials = s.trials.assign(is_baseline=False)
    d = headline_data(s)
    assert d["baseline"] is None and "no comparison" in render_headline(d, "x", "")
    assert math.isfinite(d["best"]["value"])


def test_report_opens_with_the_answer(study_dir, tmp_path) -> None:
    page = analysis.write_report(study_dir("single"), tmp_path / "r.html").read_text()
    assert page.index('id="answer"') < page.index('id="summary"')
    assert 'class="headline"' in page


def test_f1_figure_compares_skill_when_code_sizes_differ(study_dir) -> None:
    s = analysis.load_study(study_dir("single"))
    n = len(s.trials)
    s.trials = s.trials.assign(
        **{"config/y_dim": [64 if i % 2 else 128 for i in range(n)], "f1_macro_skill": 0.1}
    )
    data = analysis.f1_distribution_data(s)
    assert set(data["y_dim"]) == {64, 128}
    fig = analysis.f1_distribution_figure(data)
    assert "skill" in fig.layout.title.text
    # the paper's band and mean carry one label (two labels at the band overlapped)
    paper = [a.text for a in fig.layout.annotations if "paper" in a.text]
    assert paper == ["paper F1 as skill 0.1124 (range 0.0967–0.128)"]  # chance 0.0643
    names = {t.name for t in fig.data}  # one histogram per size and state
    assert {"64-bit code", "128-bit code"} <= names and any("stopped" in n for n in names)
    s.trials = s.trials.assign(**{"config/y_dim": 128})
    fig = analysis.f1_distribution_figure(analysis.f1_distribution_data(s))
    assert "skill" not in fig.layout.title.text  # all 128-bit: the paper's own F1 band
    paper = [a.text for a in fig.layout.annotations if "paper" in a.text]
    assert paper == ["paper F1 0.1695 (range 0.155–0.184)"]
    assert [t.name for t in fig.data] == [
        "completed trials",
        "stopped early (F1 at their last epoch)",
    ]  # stopped trials are marked, not mixed in


def test_two_studies_side_by_side(study_dir, tmp_path) -> None:
    single, multi = (
        analysis.load_study(study_dir("single")),
        analysis.load_study(study_dir("multi")),
    )
    from analysis._headline import comparison_table

    table = comparison_table([single, multi])
    assert table["study"].tolist() == [single.name, multi.name]
    assert table.loc[0, "best"] == headline_data(single)["best"]["value"]
    page = analysis.write_report(
        study_dir("single"), tmp_path / "r.html", compare=[study_dir("multi")]
    ).read_text()
    assert page.index('id="answer"') < page.index('id="compare"') < page.index('id="summary"')
    assert multi.name in page


def test_the_reference_predictor_appears_beside_the_answer(study_dir, tmp_path) -> None:
    import json
    import shutil

    from analysis._headline import reference_note

    folder = tmp_path / "s"
    shutil.copytree(study_dir("single"), folder)
    assert reference_note(analysis.load_study(folder)) == ""
    (folder / "reference.json").write_text(
        json.dumps(
            {
                "predictor": "csp5-0.3.1",
                "y_dim": 128,
                "metrics": {"f1_macro": 0.26, "retrieval_mrr": 0.27, "f1_macro_present": 0.31},
                "caveat": "every row of the file, not a held-out split",
            }
        )
    )
    note = reference_note(analysis.load_study(folder))
    assert "csp5-0.3.1" in note and "f1_macro 0.26" in note and "retrieval_mrr 0.27" in note
    assert "f1_macro_present 0.31" in note  # all rows vs validation rows: beside F1 (#22.5)
    assert "csp5-0.3.1" in analysis.write_report(folder, tmp_path / "r.html").read_text()
    (folder / "reference.json").write_text("{torn")
    assert reference_note(analysis.load_study(folder)) == ""


def test_a_cd_far_from_the_papers_is_explained() -> None:
    import numpy as np

    from analysis._plot_latent import cd_curve_data, cd_gap_note

    radii = np.array([0.01, 0.05, 0.1, 0.2, 0.5, 1.0])
    near = {"a": {"cd_radii": radii, "cd_local": radii * 38, "rcd_local": radii}}
    assert cd_gap_note(cd_curve_data(near)) == ""
    far = {"b": {"cd_radii": radii, "cd_local": radii * 1300, "rcd_local": radii}}
    note = cd_gap_note(cd_curve_data(far))
    assert "trial b gives 1300" in note and "rCD" in note and "34.1×" in note


def test_answer_shows_the_figures_renumbered_beside_the_objective(study_dir) -> None:
    """Issue #21: best and baseline in the file's numbering and renumbered, with their
    atom order; the objective's own-numbering twin is the figure set beside it."""
    s = analysis.load_study(study_dir("single"))
    n = len(s.trials)
    orders = ["source" if i == 0 else "canonical" for i in range(n)]
    params = [json.dumps({"atom_order": o}) for o in orders]
    own = np.linspace(0.10, 0.20, n)
    moved = np.where(np.array(orders) == "source", 0.01, own)
    s.trials = s.trials.assign(params=params, f1_macro_skill=own, f1_macro_skill_relabelled=moved)
    s.info["objectives"] = [{"metric": "f1_macro_skill_relabelled", "mode": "max"}]
    d = headline_data(s)
    num = d["numbering"]
    assert num["metric"] == "f1_macro_skill"
    best = s.trials.set_index("trial_id").loc[d["best"]["trial_id"]]
    assert num["best"]["own"] == best["f1_macro_skill"]
    assert num["best"]["relabelled"] == best["f1_macro_skill_relabelled"]
    assert num["best"]["atom_order"] == "canonical"
    assert num["baseline"]["atom_order"] == "source" and num["baseline"]["relabelled"] == 0.01
    page = render_headline(d, "single", "")
    assert "renumbered at random" in page and "in the data file's numbering" in page
    # a study without relabelled figures (older versions) shows no such table
    s2 = analysis.load_study(study_dir("single"))
    s2.trials = s2.trials.drop(columns=["f1_macro_skill_relabelled"])
    assert headline_data(s2)["numbering"] is None


def test_numbering_scatter_data_has_each_finished_trials_two_figures(study_dir) -> None:
    s = analysis.load_study(study_dir("single"))
    old = s.trials.drop(columns=["f1_macro_skill_relabelled"])
    assert analysis.numbering_scatter_data(analysis.Study(s.path, s.info, old, s.epochs)).empty
    n = len(s.trials)
    s.trials = s.trials.assign(
        params=[json.dumps({"atom_order": "source" if i % 2 else "canonical"}) for i in range(n)],
        f1_macro_skill=np.linspace(0.0, 0.2, n),
        f1_macro_skill_relabelled=[
            0.01 if i % 2 else v for i, v in enumerate(np.linspace(0, 0.2, n))
        ],
    )
    data = analysis.numbering_scatter_data(s)
    finished = s.finished
    assert list(data["trial_id"]) == list(finished["trial_id"].astype(str))
    canon = data[data["atom_order"] == "canonical"]
    assert (canon["own"] == canon["renumbered"]).all()
    assert (data.loc[data["atom_order"] == "source", "renumbered"] == 0.01).all()
    fig = analysis.numbering_scatter_figure(data)
    assert {t.name for t in fig.data} == {"same skill renumbered", "canonical", "source"}


def test_the_printed_retrain_command_names_the_studys_data(study_dir) -> None:
    s = analysis.load_study(study_dir("single"))
    s.info["data"] = {"path": "/data/my file.csv", "sha256": "0" * 64}
    page = render_headline(headline_data(s), "/st/my study", "")
    assert "--data &#x27;/data/my file.csv&#x27;" in page
    assert "revstudy export &#x27;/st/my study&#x27;" in page


def test_the_answer_shows_comparable_figures_and_where_the_baseline_is_ahead(study_dir) -> None:
    """Issue #22.6: F1 at 128 bits with its code size's ceiling, F1 over bins with a
    positive and retrieval beside the objective; a baseline that retrieves better is said
    in the answer, not only in a table far below."""
    s = analysis.load_study(study_dir("single"))
    n = len(s.trials)
    s.trials = s.trials.assign(
        f1_macro_128=np.linspace(0.1, 0.2, n),
        f1_macro_128_ceiling=0.56,
        f1_macro_present=np.linspace(0.15, 0.25, n),
        retrieval_mrr=np.where(s.trials["is_baseline"].astype(bool), 0.7, 0.5),
        retrieval_top10=0.8,
    )
    d = headline_data(s)
    best = s.trials.set_index("trial_id").loc[d["best"]["trial_id"]]
    assert d["best"]["figures"]["f1_macro_128"] == best["f1_macro_128"]
    assert d["best"]["figures"]["f1_macro_128_ceiling"] == 0.56
    assert d["baseline"]["figures"]["retrieval_mrr"] == 0.7
    assert baseline_ahead(d) == ["retrieval_mrr"]
    page = render_headline(d, "single", "")
    assert "ceiling of its code size" in page and "macro F1, bins with a positive" in page
    assert "The paper baseline is ahead on retrieval MRR (0.7 against 0.5)" in page
    # an older study without these columns: no table, no claim
    s2 = analysis.load_study(study_dir("single"))
    d2 = headline_data(s2)
    assert "ceiling of its code size" not in render_headline(d2, "single", "")


def test_the_answer_gives_the_retrieval_figures_their_chance_floor(study_dir) -> None:
    """Beside retrieval MRR and top-10, what a random ranking of the same library scores
    (recorded with the trial): a rank r of L uniform gives MRR = mean of 1/r, top-10 = 10/L."""
    s = analysis.load_study(study_dir("single"))
    n_lib = 1133
    mrr_random = sum(1 / r for r in range(1, n_lib + 1)) / n_lib  # 0.006717…
    s.trials = s.trials.assign(
        retrieval_mrr=0.04,
        retrieval_top10=0.07,
        retrieval_mrr_random=mrr_random,
        retrieval_top10_random=10 / n_lib,
        retrieval_library=float(n_lib),
    )
    page = render_headline(headline_data(s), "single", "")
    assert (
        "A random ranking of those 1133 structures scores MRR 0.006717 and top-10 0.008826." in page
    )
    # a study recorded before the floor was kept: no sentence
    s.trials = s.trials.drop(columns=["retrieval_mrr_random"])
    assert "A random ranking" not in render_headline(headline_data(s), "single", "")


def test_an_infeasible_trial_is_never_the_answer(study_dir) -> None:
    """Issue #33: with constraints, the answer is the best trial that meets them; the
    sentence names them and how many completed trials broke them."""
    import dataclasses

    s = analysis.load_study(study_dir("single"))
    done = s.trials[s.trials.state == "COMPLETED"]
    top = done.sort_values("f1_macro").trial_id.iloc[-1]
    s.trials = s.trials.assign(feasible=s.trials.trial_id != top)
    s.study_info = dataclasses.replace(s.study_info, constraints=("inv_error_max<=1e-05",))
    d = headline_data(s)
    assert d["best"]["trial_id"] != top and d["n_infeasible"] == 1
    assert d["best"]["value"] == done[done.trial_id != top]["f1_macro"].max()
    sentence = render_headline(d, "single", "")
    n = d["n_completed"]
    assert (
        f"Meeting inv_error_max&lt;=1e-05: Best of the {n - 1} of {n} completed trials" in sentence
    )
    s.trials = s.trials.assign(feasible=False)
    d = headline_data(s)
    assert d["best"] is None
    assert "meets inv_error_max&lt;=1e-05: nothing to recommend" in render_headline(d, "s", "")


def test_the_baseline_is_said_to_run_with_its_own_settings_not_the_fixed_ones(study_dir) -> None:
    """The quick space fixes atom_order canonical for its trials and gives the paper
    baseline the data file's numbering (`baseline:`): the answer must say source."""
    s = analysis.load_study(study_dir("single"))
    s.info["space"] = {
        **s.info["space"],
        "fixed": {"hidden_ratio": 0.25, "atom_order": "canonical"},
        "baseline": {"atom_order": "source"},
    }
    page = render_headline(headline_data(s), "single", "")
    assert (
        "The paper baseline runs with hidden_ratio 0.25 (this space&#x27;s fixed settings) and "
        "atom_order source (the paper&#x27;s protocol, as the space&#x27;s baseline block asks)."
    ) in page
    assert "atom_order canonical" not in page
    rows = s.trials.drop(columns=[c for c in s.trials if c == "config/atom_order"])
    base = rows[rows["is_baseline"].astype(bool)].iloc[0]
    other = rows[~rows["is_baseline"].astype(bool)].iloc[0]
    assert s.setting(base, "atom_order", "?") == "source"
    assert s.setting(other, "atom_order", "?") == "canonical"
    # a space without a baseline block: the fixed settings alone, as before
    plain = analysis.load_study(study_dir("single"))  # study_info is read once a study
    plain.info["space"] = {**s.info["space"], "baseline": {}}
    page = render_headline(headline_data(plain), "single", "")
    assert "runs with hidden_ratio 0.25, atom_order canonical (this space&#x27;s fixed" in page


def test_a_large_studys_counts_are_written_with_thousands_separators(study_dir) -> None:
    """A study at GPU rates reaches 10⁴ trials: the answer says 10,000, not 10000."""
    d = headline_data(analysis.load_study(study_dir("single")))
    d.update(n_completed=10000, n_infeasible=0)
    assert "Best of 10,000 completed trials" in render_headline(d, "single", "")
    d.update(n_infeasible=1234)
    assert "Best of the 8,766 of 10,000 completed trials that meet them" in render_headline(
        d, "single", ""
    )
    d.update(best=None, n_trials=12345, n_infeasible=0)
    assert "No trial has finished yet (12,345 started)" in render_headline(d, "single", "")
