"""The HTML report: sections, offline guarantee, robustness, and no ray/torch import."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import analysis

ROOT = Path(__file__).resolve().parents[2]


def figure_count(html: str) -> int:
    """The number of figures the report says it has (meta revstudy-figures)."""
    m = re.search(r'<meta name="revstudy-figures" content="(\d+)">', html)
    assert m, "report lacks the figure-count meta tag"
    return int(m.group(1))


def assert_offline(html: str) -> None:
    """No external script, stylesheet, font, image or frame: the file works offline."""
    assert not re.search(r"<script[^>]+src=", html)
    assert not re.search(r"<link[^>]+href=", html)
    assert not re.search(r"<(img|iframe)[^>]+src=[\"']?https?:", html)
    assert "@import" not in html.split("<script", 1)[0]
    assert html.count("plotly.js v") == 1  # plotly.js inline, once for every figure


@pytest.fixture(scope="module")
def single_html(study_dir, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("rep") / "single.html"
    return analysis.write_report(study_dir("single"), out).read_text()


def test_single_report_has_every_section(single_html: str) -> None:
    assert_offline(single_html)
    for sid in ("summary", "history", "parallel", "importance", "slice", "contour", "learning",
                "f1", "numbering", "inversion", "zfree", "cd", "generation",
                "baseline"):  # fmt: skip
        assert f'<section id="{sid}">' in single_html
    assert 'class="reason"' not in single_html, "a section could not be drawn"
    assert 'id="pareto"' not in single_html  # single objective
    n = figure_count(single_html)
    assert n == single_html.count('class="plotly-graph-div"') == 13
    assert "partial-banner" not in single_html


def test_report_is_written_in_study_by_default(study_dir) -> None:
    out = analysis.cli_report(study_dir("single"))
    assert out == study_dir("single") / "report.html" and out.is_file()


def test_multi_objective_pareto(study_dir, tmp_path: Path) -> None:
    html = analysis.write_report(study_dir("multi"), tmp_path / "m.html").read_text()
    assert '<section id="pareto">' in html and 'class="reason"' not in html
    assert "Pareto front" in html


def test_all_failed_study(study_dir, tmp_path: Path) -> None:
    html = analysis.write_report(study_dir("failed"), tmp_path / "f.html").read_text()
    assert "Failed trials" in html and "CUDA out of memory" in html
    assert "No trial finished" in html
    assert "Not available" in html
    assert_offline(html)


def test_running_study_banner(study_dir, tmp_path: Path) -> None:
    html = analysis.write_report(study_dir("running"), tmp_path / "r.html").read_text()
    assert 'id="partial-banner"' in html and "3 trial(s) still running" in html


def test_minimal_study_gives_reasons(study_dir, tmp_path: Path) -> None:
    html = analysis.write_report(study_dir("minimal"), tmp_path / "x.html").read_text()
    assert "no epochs.parquet" in html
    assert "arrays.npz" in html
    assert figure_count(html) == html.count('class="plotly-graph-div"') > 0


def test_data_functions(study_dir) -> None:
    s = analysis.load_study(study_dir("single"))
    lc = analysis.learning_curve_data(s)
    assert set(lc["metric"]) == {"val_f1_macro", "train_loss", "val_loss"}
    stopped = lc[lc["early_stopped"]]
    assert set(stopped["trial_id"]) == {"t003", "t007"} and stopped["epoch"].max() == 2
    assert len(analysis.f1_distribution_data(s)) == 13
    cd = analysis.cd_curve_data({"t000": s.arrays("t000")})
    assert set(cd["source"]) == {"trial t000", "paper"} and len(cd) == 6 * 4 + 12
    qq = analysis.zfree_qq_data(s.arrays("t000")["z_free_sample"])
    assert qq["theoretical"].is_monotonic_increasing and len(qq) <= 2000
    sc = analysis.count_scatter_data(s.arrays("t000"))
    assert sc.groupby(["quantity", "generated_by"], sort=False).size().to_dict() == {
        ("bond_count", "from the spectrum code alone"): 250,
        ("bond_count", "own Y_latent, sampled Z_free (the paper's)"): 250,
        ("aromatic", "from the spectrum code alone"): 250,
        ("aromatic", "own Y_latent, sampled Z_free (the paper's)"): 250,
    }


def test_the_count_scatter_draws_the_code_alone_test_first_with_scipys_r(study_dir) -> None:
    arr = analysis.load_study(study_dir("single")).arrays("t000")
    fig = analysis.count_scatter_figure(analysis.count_scatter_data(arr), "t000")
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0] == "bonds (count of ones), from the spectrum code alone"
    assert titles[2].endswith("own Y_latent, sampled Z_free (the paper's)")
    fits = {t.name: t for t in fig.data if t.mode == "lines"}
    for q, suffix, way in (
        ("bond_count", "_from_code", "from the spectrum code alone"),
        ("aromatic", "", "own Y_latent, sampled Z_free (the paper's)"),
    ):
        r = np.corrcoef(arr[f"{q}_real"], arr[f"{q}_generated{suffix}"])[0, 1]
        assert f"{q}, {way}: r = {r:.3f}" in fits


def test_a_trial_without_code_alone_counts_is_said_and_drawn_from_what_it_has(
    study_dir, tmp_path: Path, single_html: str
) -> None:
    html = analysis.write_report(study_dir("multi"), tmp_path / "m.html").read_text()
    assert "recorded before revstudy kept the structures generated from the code alone" in html
    assert "kept the structures generated" not in single_html
    arr = analysis.load_study(study_dir("multi")).arrays("t000")
    sc = analysis.count_scatter_data(arr)
    assert set(sc["generated_by"]) == {"own Y_latent, sampled Z_free (the paper's)"}


def test_tf32_trials_are_flagged_beside_the_inversion_error(study_dir, single_html: str) -> None:
    data = analysis.inversion_error_data(analysis.load_study(study_dir("single")))
    assert set(data.loc[data["tf32"], "trial_id"]) == {"t002"}
    assert analysis.tf32_note(data).startswith("1 trial(s) ran with TF32")
    assert analysis.tf32_note(data[~data["tf32"]]) == ""
    assert "ran with TF32 CUDA kernels" in single_html


def test_a_resume_on_another_device_type_is_told(single_html: str) -> None:
    assert "1 trial(s) resumed on another device type (CPU ↔ GPU)" in single_html
    assert "generator reseeded from seed and epoch" in single_html


def test_no_ray_or_torch(study_dir, tmp_path: Path) -> None:
    # A finder that refuses ray/torch, rather than sys.modules[...] = None: scipy's
    # array_api_compat looks torch up in sys.modules and breaks on a None entry.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('ray', 'torch'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import analysis\n"
        f"p = analysis.write_report({str(study_dir('single'))!r}, {str(tmp_path / 'n.html')!r})\n"
        "assert p.is_file()\n"
        "assert 'class=\"reason\"' not in p.read_text()\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'torch')]\n"
        "assert not bad, bad\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]


def test_one_diverged_trial_cannot_flatten_the_loss_curves(study_dir) -> None:
    """Issue #22: losses of 25 M in one trial; the loss panels are on a log axis."""
    s = analysis.load_study(study_dir("single"))
    first = s.epochs["trial_id"] == s.epochs["trial_id"].iloc[0]
    s.epochs.loc[first, "train_loss"] = 2.5e7
    fig = analysis.learning_curve_figure(analysis.learning_curve_data(s))
    assert fig.layout.yaxis.type == "linear"  # F1
    assert fig.layout.yaxis2.type == "log" and fig.layout.yaxis3.type == "log"
    assert "log scale" in fig.layout.yaxis2.title.text


def test_one_split_studies_say_so_instead_of_a_table_of_dashes(study_dir) -> None:
    s = analysis.load_study(study_dir("single"))
    s.info["repeats"] = 1
    sec = next(x for x in analysis.build_sections(s) if x.id == "baseline")
    page = "".join(sec.blocks)
    assert "one split" in page and "<table" not in page


def test_the_summary_says_how_trials_trained_in_packs() -> None:
    from types import SimpleNamespace

    import pandas as pd

    from analysis._report import packs_text

    trials = pd.DataFrame({"trial_id": list("abcde"), "pack": ["p1", "p1", "p2", "", None]})
    packed = SimpleNamespace(study_info=SimpleNamespace(pack=4), trials=trials)
    assert packs_text(packed) == (  # type: ignore[arg-type]
        "up to 4 trials of one network shape trained together as one ensemble: "
        "3 trial(s) in 2 pack(s); each is its own trial here"
    )
    alone = SimpleNamespace(study_info=SimpleNamespace(pack=1), trials=trials)
    assert packs_text(alone) == "1 (each trial alone)"  # type: ignore[arg-type]
