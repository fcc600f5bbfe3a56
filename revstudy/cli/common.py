"""Shared CLI pieces: user errors as one line, the paper-comparison table."""

from __future__ import annotations

import errno
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, TextIO

import typer
from rich.console import Console
from rich.table import Table

from revstudy.errors import RevstudyError

ThreadsOption = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="CPU threads (default: the cores not busy when it starts; 0: every core)",
        show_default=False,
    ),
]


def message_console() -> Console:
    """Where the CLI's messages go: stderr, never wrapped by Rich, so a path or a phrase
    reaches the terminal whole (copyable) at any width. Tables and progress bars keep
    their own consoles: they are laid out to a width."""
    return Console(stderr=True, soft_wrap=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a `RevstudyError` into one `error: …` line on stderr and its exit code; the
    storage failing under a command (read-only, full, gone) likewise, naming the path and
    the errno, instead of a traceback."""
    try:
        yield
    except RevstudyError as e:
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(e.exit_code) from None
    except OSError as e:
        if e.errno not in STORAGE_ERRNOS:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(
            f"error: {where}{e.strerror or e} (errno {e.errno} {errno.errorcode.get(e.errno, '')})"
            + STORAGE_HINTS.get(e.errno, ""),
            file=sys.stderr,
        )
        raise typer.Exit(2) from None


def plain_warnings() -> None:
    """Warnings as one `warning: …` line on stderr, like the errors, instead of Python's
    `file:line: UserWarning:` format with the source line under it."""

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        print(f"warning: {message}", file=sys.stderr)

    warnings.showwarning = show


# errors of the storage itself, which a user fixes outside revstudy
STORAGE_ERRNOS = frozenset(
    {
        errno.EROFS,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EACCES,
        errno.EPERM,
        errno.EIO,
        errno.ENOENT,
        errno.ENAMETOOLONG,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ELOOP,
    }
)
STORAGE_HINTS = {
    errno.EROFS: "; use a writable --storage (or $REVSTUDY_STORAGE) or --out",
    errno.ENOSPC: "; free disk space and run the command again (nothing half-written is "
    "kept; an interrupted study continues with `revstudy resume`)",
    errno.EDQUOT: "; free quota and run the command again (an interrupted study continues "
    "with `revstudy resume`)",
    errno.EACCES: "; check the folder's permissions",
    errno.ENAMETOOLONG: "; use a shorter name or path",
}


# our metrics without a published value, shown under the paper's rows
EXTRA_ROWS = {
    "cond_variation_mean": "conditional variation at fixed Y_latent (ours)",
    "bond_count_corr_from_code": "bond-count corr., generated from the code",
    "f1_random_baseline": "random predictor, macro F1 (as our F1)",
    "f1_bin_prior_baseline": "bin-prior predictor F1 (per-bin rates)",
    "f1_macro_skill": "F1 skill over the bin prior",
    "f1_micro": "micro F1",
    # macro F1 averages over every bin, those without a positive too (0 for any model), so
    # figures from other rows (another file, a split) compare only beside this one
    "f1_macro_present": "macro F1 over the bins with a positive",
    "f1_macro_128": "macro F1 at the paper's 128 bits",
    "f1_macro_128_ceiling": "… a perfect code of this size scores",
    "retrieval_top1": "retrieval: true structure ranked first",
    "retrieval_top10": "retrieval: true structure in the top 10",
    "retrieval_mrr": "retrieval: mean reciprocal rank",
    "retrieval_mrr_random": "retrieval MRR of a random ranking",
}


# the paper's figures that hold for its 128-bit code only: beside another code size, none
CODE_SIZE_ROWS = ("f1_macro", "f1_random_micro")


def paper_table(
    aggregate: dict[str, dict[str, float]], title: str, y_dim: int = 128, runs: int = 2
) -> Table:
    """Our figures next to the paper's (whose F1 figures are for a 128-bit code). With
    another code size the paper's macro F1 moves to our F1 at 128 bits, the row it compares
    with, and the code-size rows show no paper figure: a 64-bit F1 beside the paper's
    128-bit one would read as a win or a loss that is neither. With `runs` = 1 (one model
    scored) the table shows its values, not a spread of one value."""
    from revstudy.paper import PAPER_FIGURES

    published = dict(PAPER_FIGURES)
    moved = {}  # the code-size rows' figures, kept off them for another code size
    if y_dim != 128:
        title += f" — {y_dim}-bit code: the paper's F1 (128 bits) stands beside our F1 at 128 bits"
        moved = {k: published.pop(k) for k in CODE_SIZE_ROWS}
    t = Table(title=title)
    ours = ("ours",) if runs == 1 else ("ours mean ± std", "ours min–max")
    for col in ("metric", *ours, "paper", "paper range"):
        t.add_column(col)
    rows: list[tuple[str, str, tuple[float, float | None, float | None, str] | None]]
    rows = [(k, v[3], None) for k, v in moved.items()]
    rows += [(k, v[3], v) for k, v in published.items()]
    rows += [
        (k, label, moved["f1_macro"] if moved and k == "f1_macro_128" else None)
        for k, label in EXTRA_ROWS.items()
    ]
    for key, label, paper in rows:
        a = aggregate.get(key)
        if a is None:
            continue
        value = low = high = None
        if paper is not None:
            value, low, high, _ = paper
        rng = f"{low:.4g}–{high:.4g}" if low is not None and high is not None else ""
        mine = (
            (f"{a['mean']:.4g}",)
            if runs == 1
            else (f"{a['mean']:.4g} ± {a['std']:.2g}", f"{a['min']:.4g}–{a['max']:.4g}")
        )
        t.add_row(
            label.replace("128-bit", f"{y_dim}-bit"),
            *mine,
            f"{value:.4g}" if value is not None else "",
            rng,
        )
    return t
