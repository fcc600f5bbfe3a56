"""Proposing structures from spectra with a trained model: candidate decoding
(`candidates`), ranked elucidation (`elucidate`) and its benchmark (`benchmark`).

Public names are re-exported here and load their module on first use, so importing
the package stays light (no torch or ray until a name needs them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from revstudy.lazy import lazy_exports

if TYPE_CHECKING:
    from revstudy.elucidation.benchmark import (
        CHUNK_ROWS,
        Similarity,
        elucidation_benchmark,
    )
    from revstudy.elucidation.candidates import (
        MAX_VALENCE,
        Skeleton,
        bond_scores,
        decode_candidate,
    )
    from revstudy.elucidation.elucidate import (
        MAX_PPM,
        Candidate,
        Elucidation,
        Library,
        canonical,
        code_of,
        decode_all,
        generate,
        grid_smiles,
        parse_spectrum,
        rank_grids,
        set_bins,
        smiles_grid,
        strained,
    )

_EXPORTS = {
    "CHUNK_ROWS": "benchmark",
    "Candidate": "elucidate",
    "Elucidation": "elucidate",
    "Library": "elucidate",
    "MAX_PPM": "elucidate",
    "MAX_VALENCE": "candidates",
    "Similarity": "benchmark",
    "Skeleton": "candidates",
    "bond_scores": "candidates",
    "canonical": "elucidate",
    "code_of": "elucidate",
    "decode_all": "elucidate",
    "decode_candidate": "candidates",
    "elucidation_benchmark": "benchmark",
    "generate": "elucidate",
    "grid_smiles": "elucidate",
    "parse_spectrum": "elucidate",
    "rank_grids": "elucidate",
    "set_bins": "elucidate",
    "smiles_grid": "elucidate",
    "strained": "elucidate",
}
__all__ = [
    "CHUNK_ROWS",
    "MAX_PPM",
    "MAX_VALENCE",
    "Candidate",
    "Elucidation",
    "Library",
    "Similarity",
    "Skeleton",
    "bond_scores",
    "canonical",
    "code_of",
    "decode_all",
    "decode_candidate",
    "elucidation_benchmark",
    "generate",
    "grid_smiles",
    "parse_spectrum",
    "rank_grids",
    "set_bins",
    "smiles_grid",
    "strained",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)
