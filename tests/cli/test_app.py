"""The command line as a whole (revstudy.cli.app): help texts and their defaults, and the
small things a user hits first (issue 12, point 7), each checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from revstudy.cli.app import app

runner = CliRunner()


def test_spaces_show_whole_descriptions_and_the_paper_space() -> None:
    res = runner.invoke(app, ["spaces"])
    assert res.exit_code == 0
    out = " ".join(res.stdout.split())
    assert "paper (0 searched parameters" in out and "The paper's configuration, fixed" in out
    assert "never used for search decisions." in out  # the default space's last sentence
    assert "split(s) per trial, objectives f1_macro_skill_relabelled:max)" in out


def test_data_info_takes_a_path(synthetic_csv: Path) -> None:
    res = runner.invoke(app, ["data", "info", str(synthetic_csv), "--json"])
    assert res.exit_code == 0 and '"rows": 60' in res.stdout
    res = runner.invoke(app, ["data", "info", str(synthetic_csv), "--data", "other.csv"])
    assert res.exit_code == 2 and "give the file once" in res.stderr


def test_open_without_a_browser_says_where_the_report_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analysis_synthetic import make_study

    folder = make_study(tmp_path, "single")
    monkeypatch.setattr("webbrowser.open", lambda url: False)
    res = runner.invoke(app, ["report", str(folder), "--open"])
    assert res.exit_code == 0
    assert "no web browser found" in res.stderr and "file://" in res.stderr


def test_help_texts_match_the_readme() -> None:
    res = runner.invoke(app, ["launch", "--help"], env={"COLUMNS": "200"})
    text = " ".join(res.stdout.split())
    assert "default, quick, paper" in text
    # the objectives are each space's own (issue #30: help named one the spaces do not use)
    assert "the space's objectives; `revstudy spaces` lists them" in text
    res = runner.invoke(app, ["export", "--help"], env={"COLUMNS": "200"})
    assert "$REVSTUDY_STORAGE" in " ".join(res.stdout.split())


def test_spaces_fields_marks_the_study_settings_that_cannot_be_searched() -> None:
    res = runner.invoke(app, ["spaces", "--fields"])
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert "atom_order" in lines and "relabel" in lines
    marked = [ln for ln in lines if "study setting" in ln]
    assert [ln.split()[0] for ln in marked] == ["test_fraction", "test_seed"]


def _commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in getattr(group, "commands", {}).items():
        path = (*prefix, name)
        out += _commands(cmd, path) if hasattr(cmd, "commands") else [path]
    return out


def test_every_commands_help_shows_defaults_and_no_flag_types() -> None:
    """Issue #22.8: no `<bool>` beside on/off flags; launch's defaults are visible (Rich used
    to swallow "[default: …]" written in help texts as markup), and they come from
    `revstudy.study.options.DEFAULTS`."""
    import typer

    from revstudy.study.options import DEFAULTS

    commands = _commands(typer.main.get_command(app))
    assert ("launch",) in commands and ("data", "fetch") in commands
    for path in commands:
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0, path
        assert "<bool>" not in res.stdout, path
    res = runner.invoke(app, ["launch", "--help"], env={"COLUMNS": "200"})
    text = " ".join(res.stdout.split())
    for option in ("space", "num_samples", "max_concurrent", "sampler", "scheduler", "seed"):
        flag = "--" + option.replace("_", "-")
        assert f"(default: {DEFAULTS[option]})" in text.split(flag, 1)[1].split(" --")[0], flag


def test_next_steps_line_up_their_comments(capsys: pytest.CaptureFixture[str]) -> None:
    from revstudy.cli import study as cli_study

    summary = {"path": "/s/first", "requested": 8, "by_state": {"COMPLETED": 5}}
    cli_study._print_next(summary)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "#" in ln]
    assert [ln.split("#")[1].strip() for ln in lines] == [
        "the answer and every figure",
        "live, in a browser (revstudy[dashboard])",
        "continue the unfinished trials",  # 3 of 8 trials still to run
    ]
    assert len({ln.index("#") for ln in lines}) == 1


def test_next_steps_paste_into_a_shell_whatever_the_path(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A study under '/home/Jane Doe/…' or a folder with '#' (a shell comment) in its name:
    each printed command, read back by a POSIX shell's rules, names the study's folder."""
    import shlex

    from revstudy.cli import study as cli_study

    path = "/home/Jane Doe/it's #1 ü/first"
    cli_study._print_next({"path": path, "requested": 8, "by_state": {"COMPLETED": 5}})
    commands = capsys.readouterr().err.splitlines()[1:]
    assert len(commands) == 3
    for line in commands:
        words = shlex.split(line, comments=True)  # the aligned "# why" is a comment
        assert words[0] == "revstudy" and words[2] == path, line
