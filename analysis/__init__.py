"""Reports and statistics for a revstudy study directory (docs/study-dir.md).

Reads only the files a study writes; never imports ray or torch, so a report can be
made anywhere the folder is copied. Public names are re-exported from private modules.
"""

from ._cli import cli_report
from ._html import Section
from ._load import (
    FINISHED_STATES,
    PENDING_STATES,
    DamagedFile,
    NotAStudyError,
    Objective,
    Study,
    best_trials,
    export_table,
    load_study,
    pareto_mask,
)
from ._plot_generation import count_scatter_data, count_scatter_figure
from ._plot_latent import (
    PAPER_CD,
    cd_curve_data,
    cd_curve_figure,
    zfree_histogram_figure,
    zfree_qq_data,
    zfree_qq_figure,
)
from ._plot_metrics import (
    PAPER_INV_ERROR,
    f1_distribution_data,
    f1_distribution_figure,
    inversion_error_data,
    inversion_error_figure,
    tf32_note,
)
from ._plot_numbering import numbering_scatter_data, numbering_scatter_figure
from ._plot_optuna import Unavailable, optuna_figures, top_params
from ._plot_training import learning_curve_data, learning_curve_figure
from ._report import build_sections, write_report
from ._stats import (
    PAPER_ZFREE,
    REPEAT_METRICS,
    compare_groups,
    compare_to_baseline,
    correlation_tests,
    count_correlations,
    normality_tests,
    param_importances,
    per_sample_summary,
    zfree_normality,
    zfree_summary,
)
from ._style import PAPER_F1

__all__ = [
    "FINISHED_STATES",
    "PAPER_CD",
    "PAPER_F1",
    "PAPER_INV_ERROR",
    "PAPER_ZFREE",
    "PENDING_STATES",
    "REPEAT_METRICS",
    "DamagedFile",
    "NotAStudyError",
    "Objective",
    "Section",
    "Study",
    "Unavailable",
    "best_trials",
    "build_sections",
    "cd_curve_data",
    "cd_curve_figure",
    "cli_report",
    "compare_groups",
    "compare_to_baseline",
    "correlation_tests",
    "count_correlations",
    "count_scatter_data",
    "count_scatter_figure",
    "export_table",
    "f1_distribution_data",
    "f1_distribution_figure",
    "inversion_error_data",
    "inversion_error_figure",
    "learning_curve_data",
    "learning_curve_figure",
    "load_study",
    "normality_tests",
    "numbering_scatter_data",
    "numbering_scatter_figure",
    "optuna_figures",
    "param_importances",
    "pareto_mask",
    "per_sample_summary",
    "tf32_note",
    "top_params",
    "write_report",
    "zfree_histogram_figure",
    "zfree_normality",
    "zfree_qq_data",
    "zfree_qq_figure",
    "zfree_summary",
]
