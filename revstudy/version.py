"""The package version, in a module of its own so every layer can record it (run folders,
study.json) without importing the package's API."""

__version__ = "0.1.0"
