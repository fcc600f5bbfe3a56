"""Shared CLI pieces: the table of our figures beside the paper's."""

from __future__ import annotations


def test_paper_table_names_the_code_size_and_warns_when_not_128_bits() -> None:
    from rich.console import Console

    from revstudy.cli.common import paper_table

    agg = {k: {"mean": 0.2, "std": 0.01, "min": 0.19, "max": 0.21} for k in ("f1_macro",)}
    agg["f1_macro_skill"] = {"mean": 0.1, "std": 0.01, "min": 0.09, "max": 0.11}
    con = Console(width=200, record=True)
    con.print(paper_table(agg, "validation", y_dim=64))
    text = con.export_text()
    assert "macro F1, 64-bit code" in text and "not comparable" in text
    assert "F1 skill over the bin prior" in text and "0.1695" in text
    con = Console(width=200, record=True)
    con.print(paper_table(agg, "validation"))
    assert "128-bit" in con.export_text() and "not comparable" not in con.export_text()
