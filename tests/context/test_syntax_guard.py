"""The syntax guard's work per completion is bounded, however long the completion."""

import pytest

from dg_lsp.context import syntax_guard
from dg_lsp.context.document import Document
from dg_lsp.context.syntax_guard import MAX_PARSES, MAX_TEXT_CHARS, MAX_TEXT_LINES, keep_parsable

SOURCE = "import os\n\n\ndef f(x):\n    \n    return x\n"
CURSOR = SOURCE.index("    \n") + 4


@pytest.fixture
def parses(monkeypatch):
    """Counts the guard's parses."""
    calls = []
    original = syntax_guard._parses

    def counting(parser, text, region):
        calls.append(len(text))
        return original(parser, text, region)

    monkeypatch.setattr(syntax_guard, "_parses", counting)
    return calls


def body(count: int, broken_at: int | None = None) -> str:
    """`count` statement lines as the model writes them after the cursor; one broken."""
    lines = [f"y{i} = x + {i}" if i != broken_at else f"y{i} = (x" for i in range(count)]
    return "\n    ".join(lines)


def guard(text: str) -> str | None:
    doc = Document("file:///g.py", "python", SOURCE)
    assert not doc.has_syntax_errors()
    return keep_parsable(doc, CURSOR, text)


def test_a_clean_completion_costs_one_parse(parses):
    assert guard(body(50)) == body(50)
    assert len(parses) == 1


def test_a_broken_last_line_is_cut_within_the_bound(parses):
    assert guard(body(200, broken_at=199)) == body(199)
    assert len(parses) == 2


def test_a_break_far_from_the_end_is_found_by_binary_search(parses):
    # One line shorter each time would take 100 parses (the guard once gave up after 16).
    assert guard(body(200, broken_at=100)) == body(100)
    assert len(parses) <= MAX_PARSES < 17  # the linear scan it replaced took up to 17


def test_each_parse_is_bounded_in_size(parses):
    guard(body(MAX_TEXT_LINES, broken_at=3))
    assert 0 < len(parses) <= MAX_PARSES
    assert max(parses) <= syntax_guard.REGION_LIMIT + MAX_TEXT_CHARS


@pytest.mark.parametrize("text", [body(MAX_TEXT_LINES + 1, broken_at=0), "y = (" + "x" * MAX_TEXT_CHARS])
def test_a_completion_over_the_limits_goes_unchecked(parses, text):
    assert guard(text) == text
    assert parses == []


def test_a_block_opener_just_before_the_break_is_stepped_over():
    # `if x:` alone never parses; the tail's one-line steps keep it with its body line.
    text = "y = x\n    if x:\n        y = 2\n    z = (x"
    assert guard(text) == "y = x\n    if x:\n        y = 2"
