"""The shared HumanEval-Infilling data: tests that need it skip without it, except in CI
(see `tests/_ci.py`). The data sits beside the checkout (`../shared/data/humaneval-infilling`,
or $DG_LSP_HUMANEVAL_DIR)."""

from __future__ import annotations

from pathlib import Path

from dg_lsp.evaluation import humaneval

from .._ci import skip_or_fail


def require_humaneval_data() -> Path:
    """The data folder holding every set's file; else skip (outside CI) or fail (in CI)."""
    data = humaneval.default_data_dir()
    missing = [file for file, _ in humaneval.SETS.values() if not (data / file).is_file()]
    if missing:
        message = (
            f"the shared HumanEval-Infilling data is not at {data} (missing {', '.join(missing)}); it belongs "
            f"beside the repository in ../shared/data/humaneval-infilling, or where ${humaneval.DATA_ENV} points"
        )
        skip_or_fail(message)
    return data
