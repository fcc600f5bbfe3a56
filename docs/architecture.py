"""Render docs/architecture.md: the layers, the import graph and the path of one study.

The layers and the other rules come from the import-linter contracts in pyproject.toml (the
source of truth, checked by `lint-imports`); the graph is the one the code has (grimp, the
library import-linter is built on); each module's line is the first sentence of its
docstring (read with `ast`: nothing is imported, so neither torch nor ray is loaded). Only
the path of one study is written by hand, as `PATH` below, and every step of it is checked
against the code: a renamed or removed function fails the check.

    python docs/architecture.py           # write docs/architecture.md
    python docs/architecture.py --check   # exit 1 if it is out of date (tests run this)
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("revstudy", "analysis")
OUT_OF_DATE = "docs/architecture.md is out of date: run python docs/architecture.py"


class Step(NamedTuple):
    """One step of the path: the module, the function or class (`Class.method` allowed) and
    what happens there."""

    module: str
    name: str
    what: str


# The path of one study, `revstudy launch` to `revstudy report`, by phase. Written by hand
# (a call graph through Ray cannot be derived), checked by `verify_path`.
PATH: tuple[tuple[str, tuple[Step, ...]], ...] = (
    (
        "Start (the driver process)",
        (
            Step(
                "revstudy.cli.study",
                "launch",
                "the typer command parses the flags into `LaunchOptions` and calls the driver; "
                "afterwards it prints the summary and the next commands",
            ),
            Step(
                "revstudy.study.options",
                "LaunchOptions.validate",
                "one-line errors naming the flag, before a folder is made or Ray started",
            ),
            Step(
                "revstudy.study.driver",
                "launch",
                "a new study, or `_relaunch` of an existing name (its settings kept)",
            ),
            Step(
                "revstudy.study.spaces",
                "load_space",
                "the search-space YAML becomes a `SearchSpace` (parameters, objectives, "
                "repeats, the paper baseline)",
            ),
            Step(
                "revstudy.data.fetch",
                "resolve_data",
                "the CSV given, or the cached public data file",
            ),
            Step(
                "revstudy.data.dataset",
                "read_dataset",
                "the CSV parsed and checked into a `Dataset` (with its sha256)",
            ),
            Step(
                "revstudy.studyfolder",
                "storage_root",
                "where the study folder lives (`./revstudy-results/NAME`)",
            ),
            Step(
                "revstudy.study.driver",
                "study_lock",
                "one driver per study: a second launch or resume is refused",
            ),
            Step(
                "revstudy.study.ray_runtime",
                "ray_init",
                "an embedded local Ray (or the cluster of `--address`), with a reaper",
            ),
            Step(
                "revstudy.study.driver",
                "_new_info",
                "every setting resolved once into a `StudyInfo` (`revstudy.studyinfo`), the "
                "typed study.json the rest of the engine is handed (resume reads it back with "
                "`read_study`)",
            ),
            Step(
                "revstudy.study.optuna_store",
                "open_optuna",
                "`optuna.journal` created; the paper baseline enqueued as the first trial; "
                "`study.json` written last",
            ),
        ),
    ),
    (
        "One driver run (launch and resume alike)",
        (
            Step(
                "revstudy.study.driver",
                "_run",
                "unfinished Optuna trials are continued, then new ones asked, up to `num_samples`",
            ),
            Step(
                "revstudy.study.search",
                "StudySearcher",
                "Ray Tune's `OptunaSearch` over the study's Optuna record: continuations "
                "first, then Optuna's sampler proposes configurations",
            ),
            Step(
                "revstudy.study.scheduling",
                "make_scheduler",
                "ASHA stops weak trials from their per-epoch reports (its rungs seeded with "
                "the continued trials' epochs)",
            ),
            Step(
                "revstudy.study.trial_context",
                "TrialContext.of_study",
                "what every trial shares (data, space, repeats, seed, objectives, threads, "
                "GPU share), built once from the `StudyInfo`",
            ),
            Step(
                "revstudy.study.ray_runtime",
                "trainable",
                "the function trainable handed to `tune.Tuner`, the trial context bound and "
                "each trial's CPUs and GPU share reserved",
            ),
        ),
    ),
    (
        "One trial (in a Ray worker)",
        (
            Step(
                "revstudy.study.trial",
                "run_trial",
                "the trial's device and id, then `train_trial` with `tune.report`",
            ),
            Step(
                "revstudy.study.trial",
                "train_trial",
                "one `Trainer` per repeat, restored from `state.pt` if the trial was "
                "interrupted; then epoch after epoch",
            ),
            Step(
                "revstudy.training.splits",
                "SplitTensors.build",
                "each repeat's seeded split (`revstudy.data.dataset.make_split`) as tensors "
                "on the device",
            ),
            Step(
                "revstudy.training.trainer",
                "Trainer",
                "one repeat's model, optimiser and losses",
            ),
            Step(
                "revstudy.training.model",
                "InvertibleNet",
                "the invertible network, built from the trial's `TrialConfig`",
            ),
            Step(
                "revstudy.training.fused",
                "Repeats.train_epoch",
                "the repeats advance one epoch in lockstep (one vmapped ensemble where they fuse)",
            ),
            Step(
                "revstudy.study.records",
                "append_epochs",
                "each epoch's rows appended to `trials/ID/epochs.jsonl`; the mean over "
                "repeats reported to Ray, a checkpoint saved",
            ),
            Step(
                "revstudy.training.metrics",
                "evaluate",
                "after the last epoch, every metric of the paper on the validation split "
                "(through `Trainer.evaluate`)",
            ),
            Step(
                "revstudy.study.trial",
                "write_final",
                "`result.json` and `arrays.npz`: the trial's record of truth",
            ),
        ),
    ),
    (
        "Back in the driver",
        (
            Step(
                "revstudy.study.search",
                "StudySearcher.on_trial_complete",
                "the outcome told to Optuna (complete, pruned or failed)",
            ),
            Step(
                "revstudy.study.callbacks",
                "StudyCallback",
                "the Ray callback: writes each `trial.json`, refreshes the tables, removes a "
                "finished trial's checkpoint, feeds the live panel",
            ),
            Step(
                "revstudy.study.records",
                "refresh_tables",
                "`trials.parquet` and `epochs.parquet` rewritten atomically",
            ),
            Step(
                "revstudy.trialtable",
                "build_trials_table",
                "every trial's state, from the trial folders (the one reader of trial state)",
            ),
            Step(
                "revstudy.study.driver",
                "_summarise_run",
                "tables, Optuna brought in step with them, the summary the CLI prints",
            ),
        ),
    ),
    (
        "The report (`revstudy report`, on any machine with the folder)",
        (
            Step(
                "revstudy.cli.study",
                "report",
                "finds the study folder and hands it to `analysis`",
            ),
            Step(
                "analysis._cli",
                "cli_report",
                "the HTML report, or a table with `--csv`/`--parquet`",
            ),
            Step(
                "analysis._load",
                "load_study",
                "the folder read into a `Study` (trials through `revstudy.trialtable`)",
            ),
            Step(
                "analysis._report",
                "write_report",
                "one offline HTML file with every figure and table",
            ),
        ),
    ),
)


@dataclass(frozen=True)
class Layer:
    """One layer of the layers contract: its modules and whether they are independent."""

    modules: tuple[str, ...]
    independent: bool


# -- the contracts ---------------------------------------------------------------------------


def contracts(pyproject: Path = PYPROJECT) -> list[dict[str, Any]]:
    """The import-linter contracts of pyproject.toml, in file order."""
    with pyproject.open("rb") as f:
        data = tomllib.load(f)
    found = data.get("tool", {}).get("importlinter", {}).get("contracts", [])
    if not isinstance(found, list):
        raise SystemExit(f"{pyproject.name}: [tool.importlinter] has no contracts list")
    return found


def layers_contract(found: Sequence[dict[str, Any]]) -> dict[str, Any]:
    layered = [c for c in found if c.get("type") == "layers"]
    if len(layered) != 1:
        raise SystemExit(f"pyproject.toml: expected one layers contract, found {len(layered)}")
    if layered[0].get("containers"):
        raise SystemExit("docs/architecture.py: layers with `containers` are not supported")
    return layered[0]


def layers(contract: dict[str, Any]) -> list[Layer]:
    """Top to bottom; `a | b` are independent siblings, `a : b` may import each other."""
    out = []
    for text in contract["layers"]:
        sep = ":" if ":" in text else "|"
        names = tuple(n.strip() for n in text.split(sep) if n.strip())
        out.append(Layer(names, independent=sep == "|"))
    return out


# -- the modules -----------------------------------------------------------------------------


def module_file(module: str) -> Path | None:
    """The source file of a module under ROOT, or None."""
    base = ROOT.joinpath(*module.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _tree(module: str) -> ast.Module | None:
    path = module_file(module)
    return None if path is None else ast.parse(path.read_text(encoding="utf-8"))


def first_sentence(doc: str | None) -> str:
    """The first sentence of the first paragraph of a docstring, on one line."""
    if not doc:
        return "(no docstring)"
    text = " ".join(doc.strip().split("\n\n")[0].split())
    end = re.search(r"(?<=[.!?])\s+(?=[A-Z`(\"'])", text)
    return text[: end.start()] if end else text


def summary(module: str) -> str:
    tree = _tree(module)
    return "(no source file)" if tree is None else first_sentence(ast.get_docstring(tree))


def _defined(body: Iterable[ast.stmt], prefix: str = "") -> set[str]:
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(prefix + node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(prefix + node.name)
            names |= _defined(node.body, f"{prefix}{node.name}.")
        elif isinstance(node, ast.Assign):
            names |= {prefix + t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(prefix + node.target.id)
    return names


def definitions(module: str) -> set[str] | None:
    """Names a module defines (functions, classes, their methods as `Class.method`, and
    assignments), or None if there is no such module."""
    tree = _tree(module)
    return None if tree is None else _defined(tree.body)


def verify_path(steps: Iterable[Step]) -> list[str]:
    """One message per step whose module is missing or does not define its name."""
    problems = []
    for n, step in enumerate(steps, 1):
        names = definitions(step.module)
        if names is None:
            problems.append(
                f"path step {n}: module {step.module} not found; update PATH in "
                "docs/architecture.py"
            )
        elif step.name not in names:
            problems.append(
                f"path step {n}: {step.module} defines no {step.name}; update PATH in "
                "docs/architecture.py"
            )
    return problems


def all_steps() -> list[Step]:
    return [step for _, steps in PATH for step in steps]


# -- the import graph ------------------------------------------------------------------------


def import_graph() -> Any:
    """grimp's graph of this checkout's packages (found from ROOT, not from site-packages)."""
    import grimp

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def unit_of(module: str, units: Sequence[str]) -> str:
    """The layer unit a module belongs to: the longest unit that is it or contains it. A
    package root (`revstudy`) counts only for its own `__init__`; a module outside every
    unit is a unit of its own, named by its first two parts."""
    best = ""
    for unit in units:
        inside = module == unit or (unit != PACKAGES[0] and module.startswith(unit + "."))
        if inside and len(unit) > len(best):
            best = unit
    return best or ".".join(module.split(".")[:2])


def unit_edges(graph: Any, units: Sequence[str]) -> set[tuple[str, str]]:
    """(importer unit, imported unit) whenever a module of one imports a module of the other."""
    edges = set()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            if imported.split(".")[0] not in PACKAGES:
                continue
            a, b = unit_of(importer, units), unit_of(imported, units)
            if a != b:
                edges.add((a, b))
    return edges


# -- rendering -------------------------------------------------------------------------------


def _md(text: str) -> str:
    """Text for a Markdown table cell: `|` escaped, `<` escaped outside code spans."""
    parts = text.replace("|", "\\|").split("`")
    return "`".join(p.replace("<", "&lt;") if i % 2 == 0 else p for i, p in enumerate(parts))


def _link(module: str) -> str:
    path = module_file(module)
    if path is None:
        return f"`{module}`"
    return f"[`{module}`](../{path.relative_to(ROOT).as_posix()})"


def _node(unit: str) -> str:
    return unit.replace(".", "_")


def _code_list(names: Iterable[str], joiner: str = ", ") -> str:
    return joiner.join(f"`{n}`" for n in names)


def _members(unit: str, modules: Iterable[str], units: Sequence[str]) -> list[str]:
    return sorted(m for m in modules if unit_of(m, units) == unit)


def _layer_title(layer: Layer) -> str:
    names = _code_list(layer.modules, " | " if layer.independent else " : ")
    if len(layer.modules) == 1:
        return names
    return names + (" (independent of each other)" if layer.independent else "")


def _table(units: Iterable[str], modules: Sequence[str], all_units: Sequence[str]) -> list[str]:
    lines = ["| module | what it is |", "|---|---|"]
    for unit in units:
        for m in _members(unit, modules, all_units):
            lines.append(f"| {_link(m)} | {_md(summary(m))} |")
    return [*lines, ""]


def render_layers(stack: Sequence[Layer], modules: Sequence[str], units: Sequence[str]) -> str:
    root, beside = PACKAGES[0], PACKAGES[1:]
    layered = {m for layer in stack for m in layer.modules}
    stray = sorted(u for u in units if u not in layered and u not in PACKAGES)
    lines = [
        "## The layers",
        "",
        "Top to bottom. A layer may import the layers below it, never one above it; modules",
        "on one layer written `a | b` must not import each other (`lint-imports` checks both,",
        "indirect imports included).",
        "",
        f"### The package root: `{root}`",
        "",
        "Its `__init__` (the public surface) is above every layer and in none.",
        "",
        *_table([root], modules, units),
    ]
    for n, layer in enumerate(stack, 1):
        lines += [f"### {n}. {_layer_title(layer)}", "", *_table(layer.modules, modules, units)]
    for unit in beside:
        lines += [
            f"### Beside the layers: `{unit}`",
            "",
            "A package of its own, bound by the forbidden contract (see the rules below).",
            "",
            *_table([unit], modules, units),
        ]
    if stray:
        lines += [
            "### In no layer",
            "",
            "These modules are in no layer of the contract: add them to it in `pyproject.toml`.",
            "",
            *_table(stray, modules, units),
        ]
    return "\n".join(lines)


def render_graph(stack: Sequence[Layer], edges: set[tuple[str, str]], units: Sequence[str]) -> str:
    rank = {m: n for n, layer in enumerate(stack) for m in layer.modules}
    independent = {m for layer in stack if layer.independent for m in layer.modules}
    layered = set(rank)

    def against(a: str, b: str) -> bool:
        if a not in rank or b not in rank:
            return False
        return rank[a] > rank[b] or (rank[a] == rank[b] and a in independent)

    lines = [
        "## Who imports whom",
        "",
        "Computed from the code (grimp): an arrow A → B where any module of A imports any",
        "module of B, at the top of a file or inside a function. A dotted arrow would be an",
        "import against the layers.",
        "",
        "```mermaid",
        "flowchart TD",
    ]
    for unit in sorted(u for u in units if u not in layered):
        lines.append(f'    {_node(unit)}["{unit}"]')
    for n, layer in enumerate(stack, 1):
        lines.append(f'    subgraph layer{n}["{n}"]')
        lines += [f'        {_node(m)}["{m}"]' for m in layer.modules]
        lines.append("    end")
    for a, b in sorted(edges):
        arrow = "-.->" if against(a, b) else "-->"
        lines.append(f"    {_node(a)} {arrow} {_node(b)}")
    lines += ["```", "", "The same, as text:", ""]
    for unit in sorted({a for a, _ in edges}):
        targets = sorted(b for a, b in edges if a == unit)
        lines.append(f"- `{unit}` → {_code_list(targets)}")
    bad = sorted(e for e in edges if against(*e))
    if bad:
        lines += ["", "Against the layers: " + ", ".join(f"`{a}` → `{b}`" for a, b in bad)]
    lines.append("")
    return "\n".join(lines)


def _contract_words(c: dict[str, Any]) -> list[str]:
    kind = c.get("type")
    if kind == "layers":
        return ["The layers above, top to bottom."]
    if kind == "forbidden":
        how = (
            "directly"
            if c.get("allow_indirect_imports") in (True, "true", "True")
            else "directly or through other modules"
        )
        return [
            f"{_code_list(c.get('source_modules', []))} must not import, {how}: "
            f"{_code_list(c.get('forbidden_modules', []))}."
        ]
    if kind == "acyclic_siblings":
        return [
            "In each of these packages, the imports between its children (each counted with "
            "everything inside it) form no cycle: " + _code_list(c.get("ancestors", [])) + "."
        ]
    if kind == "independence":
        return [f"{_code_list(c.get('modules', []))} must not import each other."]
    keys = {k: v for k, v in c.items() if k not in ("name", "type")}
    return [f"type `{kind}`: " + ", ".join(f"{k} = {v}" for k, v in sorted(keys.items())) + "."]


def render_contracts(found: Sequence[dict[str, Any]]) -> str:
    lines = [
        "## The rules",
        "",
        "The import-linter contracts of `pyproject.toml`, which `lint-imports` checks:",
        "",
    ]
    for c in found:
        lines.append(f"- **{c.get('name', c.get('type'))}** — " + " ".join(_contract_words(c)))
    lines.append("")
    return "\n".join(lines)


def render_path() -> str:
    lines = [
        "## The path of one study",
        "",
        "`revstudy launch` to `revstudy report`, through the modules (written by hand in",
        "`docs/architecture.py`; the check fails when a step names something the code no",
        "longer defines).",
        "",
    ]
    n = 1
    for phase, steps in PATH:
        lines += [f"### {phase}", ""]
        for step in steps:
            lines.append(f"{n}. {_link(step.module)} `{step.name}` — {step.what}.")
            n += 1
        lines.append("")
    return "\n".join(lines)


def render() -> str:
    """The whole of docs/architecture.md."""
    found = contracts()
    stack = layers(layers_contract(found))
    graph = import_graph()
    modules = sorted(graph.modules)
    units = sorted({m for layer in stack for m in layer.modules} | set(PACKAGES))
    units = sorted(set(units) | {unit_of(m, units) for m in modules})
    edges = unit_edges(graph, units)
    head = "\n".join(
        [
            "<!-- Generated by docs/architecture.py from pyproject.toml and the code: do not",
            "     edit; run `python docs/architecture.py` (tests fail when it is stale). -->",
            "",
            "# Architecture",
            "",
            "The layers of `revstudy` and `analysis`, the imports the code actually has, and",
            "the path of one study through the modules. The layers and rules are the",
            "import-linter contracts in `pyproject.toml`; each module's line is the first",
            "sentence of its docstring.",
            "",
        ]
    )
    parts = [
        head,
        render_layers(stack, modules, units),
        render_graph(stack, edges, units),
        render_contracts(found),
        render_path(),
    ]
    return "\n".join(parts).rstrip("\n") + "\n"


def check() -> list[str]:
    """Problems that make the committed doc wrong: broken path steps, or a stale file."""
    problems = verify_path(all_steps())
    if problems:
        return problems
    current = DOC.read_text(encoding="utf-8") if DOC.is_file() else None
    return [] if current == render() else [OUT_OF_DATE]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the doc is stale")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    problems = verify_path(all_steps())
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        return 1
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT).as_posix()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
