"""Fixtures of the evaluation tests."""

from pathlib import Path

import pytest

from ._data import require_humaneval_data


@pytest.fixture
def humaneval_data() -> Path:
    """The HumanEval-Infilling folder; the test skips without it, or fails in CI (see _data.py)."""
    return require_humaneval_data()
