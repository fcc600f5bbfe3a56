"""YAML read from a file someone else may have written: no aliases, no repeated keys,
bounded size.

`yaml.safe_load` builds no objects, but it still expands aliases: a "billion laughs" of nine
nested aliases in a search space or a model's config.yaml took over a minute and gigabytes
before revstudy saw the document. revstudy's own YAML (spaces, configs, exports) never needs
an alias, so any alias is refused where it is parsed, before anything is expanded, and the
file must be a regular file of at most `YAML_LIMIT` bytes (`revstudy.files.read_regular`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from revstudy.files import read_regular

__all__ = ["YAML_LIMIT", "YamlRefused", "read_yaml"]

YAML_LIMIT = 2**20  # a search space or config is a few KB


class YamlRefused(yaml.YAMLError):
    """YAML revstudy will not parse: aliases, or text that is not UTF-8."""


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that stops at the first alias (`*name`), where expansion would begin, and
    at a key given twice in one mapping (YAML keeps the last silently: a search space with
    `epochs:` twice searched only the second range)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise YamlRefused(
                f"line {mark.line + 1}: aliases (*name) are not allowed in revstudy files"
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<:` merges; an explicit key may override a merged one
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the constructor below says so
            if first is not None:
                raise YamlRefused(f"line {line}: {key!r} is given twice (first on line {first})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path, follow_links: bool = False) -> Any:
    """The document of a YAML file; `YamlRefused` (a `yaml.YAMLError`) for aliases or bad
    text, `UnsafeFileError` for a link, FIFO or device, or a file over `YAML_LIMIT`.
    `follow_links`: a file the user named (a space, a `--config`) may be a link to a file;
    a file inside a model or study folder may not."""
    target = Path(path).resolve() if follow_links else Path(path)
    raw = read_regular(target, YAML_LIMIT)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise YamlRefused(f"not UTF-8 text (byte {e.start})") from None
    return yaml.load(text, Loader=_NoAliasLoader)
