"""revstudy.yamlfile: YAML from files someone else may have written. Aliases are tested
with the other bombs (tests/faults/test_links_and_bombs.py); here, keys given twice."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from revstudy.yamlfile import YamlRefused, read_yaml


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("params:\n  epochs: {low: 1}\n  epochs: {low: 3}\n", "line 3: 'epochs' is given twice"),
        ("a: {c: 1, c: 2}\n", "line 1: 'c' is given twice (first on line 1)"),  # one line
        ("a: 1\nb: 2\na: 3\n", "line 3: 'a' is given twice (first on line 1)"),
        ("1: x\ntrue: y\n", "line 2: True is given twice"),  # equal keys of one dict
    ],
)
def test_a_key_given_twice_is_refused_naming_both_lines(
    tmp_path: Path, text: str, said: str
) -> None:
    """YAML itself keeps the last silently: a space with `epochs:` twice searched only the
    second range, and nothing said so."""
    (tmp_path / "f.yaml").write_text(text)
    with pytest.raises(YamlRefused, match=re.escape(said)):
        read_yaml(tmp_path / "f.yaml")


@pytest.mark.parametrize(
    ("text", "doc"),
    [
        ("x: {a: 1}\ny: {a: 2}\n", {"x": {"a": 1}, "y": {"a": 2}}),  # one key per mapping
        ("1: x\n'1': y\n", {1: "x", "1": "y"}),  # an int and a string: two keys
        ("b: {<<: {a: 1}, a: 2}\n", {"b": {"a": 2}}),  # an explicit key overrides a merge
        ("", None),
    ],
)
def test_distinct_keys_and_merges_read_as_yaml_reads_them(
    tmp_path: Path, text: str, doc: object
) -> None:
    (tmp_path / "f.yaml").write_text(text)
    assert read_yaml(tmp_path / "f.yaml") == doc
