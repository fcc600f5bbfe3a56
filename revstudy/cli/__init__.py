"""The `revstudy` command line: one module per command group, each a thin wrapper that
parses, calls the library and prints (`app` assembles them; `main` is the entry point)."""

from revstudy.cli.app import app, main

__all__ = ["app", "main"]
