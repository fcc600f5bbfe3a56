"""revstudy: hyperparameter studies of the invertible 13C NMR model of Kuhn et al.

Kept import-light: `import revstudy` loads no torch or ray, so the CLI starts quickly and
`analysis` can use the shared constants anywhere.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
