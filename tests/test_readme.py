"""The README's set-up commands are the ones that work: its test command is what CI runs.

A README test command that drifts from `.ci/run` (as one without `npm ci` did, which made the
VS Code tests skip for anyone who followed it) goes unnoticed, so CI checks it here.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
CI_RUN = REPO / ".ci" / "run"
INSTALL_COMMAND = "pip install . && dg-lsp serve"


def shell_blocks(markdown: str) -> list[list[str]]:
    """The lines of each ```sh fenced block."""
    return [block.splitlines() for block in re.findall(r"^```sh\n(.*?)^```", markdown, re.M | re.S)]


def section(markdown: str, title: str) -> str:
    """The text of the `## title` section, up to the next `## ` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def readme_test_command() -> str:
    """The one shell line of the Development section that runs pytest."""
    lines = [line.strip() for block in shell_blocks(section(README.read_text(encoding="utf-8"), "Development"))
             for line in block if "pytest" in line]
    assert len(lines) == 1, f"expected one pytest command in README's Development section, found {lines}"
    return lines[0]


def test_readme_test_command_is_what_ci_runs():
    command = readme_test_command()
    ci_lines = [line.strip() for line in CI_RUN.read_text(encoding="utf-8").splitlines()]
    assert command in ci_lines, f".ci/run does not run the README's test command verbatim: {command!r}"


def test_readme_test_command_installs_the_vscode_modules():
    # Without `npm ci` the VS Code extension's tests skip silently.
    assert "npm ci" in readme_test_command()


def test_readme_gives_the_install_command():
    assert any(INSTALL_COMMAND in line for block in shell_blocks(README.read_text(encoding="utf-8"))
               for line in block)
