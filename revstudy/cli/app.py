"""The `revstudy` typer app: the command groups of `revstudy.cli` assembled in one place.

Every user error (`RevstudyError`) becomes one `error: …` line on stderr and a non-zero exit.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from revstudy.cli.common import plain_warnings
from revstudy.cli.data import data_app
from revstudy.cli.model import register as register_model_commands
from revstudy.cli.study import register as register_study_commands
from revstudy.cli.train import register as register_train_command


def _hide_flag_types() -> None:
    """Help shows no type for on/off flags: typer >= 0.2x prints `<bool>` beside every flag
    (`--no-baseline <bool>`), which reads as if the flag took a value."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_revstudy", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich._revstudy = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_hide_flag_types()

app = typer.Typer(
    name="revstudy",
    help="Hyperparameter studies of the invertible 13C NMR model (Kuhn et al.).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
register_study_commands(app)
register_model_commands(app)
register_train_command(app)


def _version(value: bool) -> None:
    if value:
        from revstudy.version import __version__

        print(f"revstudy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print version")
    ] = False,
) -> None:
    """Hyperparameter studies of the invertible 13C NMR model (Kuhn et al.)."""
    plain_warnings()


def main() -> None:
    """The `revstudy` console script."""
    app()


if __name__ == "__main__":
    main()
