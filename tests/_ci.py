"""Skip a test whose prerequisite is missing, except in CI, where it fails instead.

A developer's machine may lack a prerequisite (the shared data beside the checkout, the VS Code
extension's node modules), and then skipping is right. CI installs or has every one of them:
there a missing prerequisite means a broken setup, and a skip would hide that those tests
stopped running. `CI` is the variable CI services set (CI=true).
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(message: str) -> None:
    if in_ci():
        pytest.fail(f"CI is set, so this is an error: {message}", pytrace=False)
    pytest.skip(message)
