"""Shared CLI pieces: the table of our figures beside the paper's."""

from __future__ import annotations


def _table_text(agg: dict, y_dim: int = 128) -> str:
    from rich.console import Console

    from revstudy.cli.common import paper_table

    con = Console(width=200, record=True)
    con.print(paper_table(agg, "validation", y_dim=y_dim))
    return con.export_text()


def _row(text: str, label: str) -> str:
    (line,) = [ln for ln in text.splitlines() if label in ln]
    return line


def test_paper_table_names_the_code_size_and_pairs_the_paper_with_its_128_bits() -> None:
    """The paper's macro F1 (0.1695, 0.1548–0.1839) is for a 128-bit code: beside a 64-bit
    code it stands on our F1 at 128 bits, and the 64-bit rows show no paper figure."""
    stats = {"mean": 0.2, "std": 0.01, "min": 0.19, "max": 0.21}
    agg = {k: dict(stats) for k in ("f1_macro", "f1_random_micro", "f1_macro_128")}
    agg["f1_macro_skill"] = {"mean": 0.1, "std": 0.01, "min": 0.09, "max": 0.11}
    text = _table_text(agg, y_dim=64)
    assert "64-bit code: the paper's F1 (128 bits) stands beside our F1 at 128 bits" in text
    assert "0.1695" not in _row(text, "macro F1, 64-bit code")
    assert "0.0643" not in _row(text, "micro F1 = density")
    assert "0.1695" in _row(text, "macro F1 at the paper's 128 bits")
    assert "0.1548–0.1839" in _row(text, "macro F1 at the paper's 128 bits")
    assert "F1 skill over the bin prior" in text and text.count("0.1695") == 1

    text = _table_text(agg)  # the paper's own code size: its figures on its own rows
    assert "stands beside" not in text
    assert "0.1695" in _row(text, "macro F1, 128-bit code")
    assert "0.0643" in _row(text, "micro F1 = density")
    assert "0.1695" not in _row(text, "macro F1 at the paper's 128 bits")
