import random
import time

import pytest
from tree_sitter import Parser

from dg_lsp.context.document import Document, PositionError

from .samples import GO, JAVASCRIPT, LUA, PYTHON, PYTHON_UNICODE_CRLF, RUST, TYPESCRIPT

# Inserted text for random edits: code fragments, line breaks of both kinds, and
# characters that are 2, 3 and 4 bytes in UTF-8 (the last two UTF-16 units).
INSERTS = ["x", "(", ")", "{", "}", ":", ";", "\n", "\r\n", "    ", "é", "名前", "🚀", "👋🏽",
           "return 1\n", "if a:\n    b = 2\n", "end\n", ""]


def _fresh_sexp(doc: Document) -> str:
    return str(Parser(doc.grammar.language).parse(doc.text.encode("utf-8")).root_node)


def _splits_crlf(text: str, i: int) -> bool:
    return 0 < i < len(text) and text[i - 1] == "\r" and text[i] == "\n"


def _random_edits(doc: Document, seed: int, steps: int, check_every: int):
    rng = random.Random(seed)
    for step in range(steps):
        text = doc.text
        start = rng.randrange(len(text) + 1)
        end = min(len(text), start + rng.choice([0, 0, 1, 3, 12]))
        if _splits_crlf(text, start) or _splits_crlf(text, end):
            continue
        new = rng.choice(INSERTS)
        doc.apply_change((doc.position_at(start), doc.position_at(end)), new)
        assert doc.text == text[:start] + new + text[end:]
        if step % check_every == 0:
            yield step


@pytest.mark.parametrize("language_id,source", [
    ("python", PYTHON), ("python", PYTHON_UNICODE_CRLF), ("typescript", TYPESCRIPT),
    ("javascript", JAVASCRIPT), ("rust", RUST), ("go", GO), ("lua", LUA),
], ids=["python", "python-unicode-crlf", "typescript", "javascript", "rust", "go", "lua"])
def test_incremental_edits_keep_the_tree_equal_to_a_fresh_parse(language_id, source):
    doc = Document(f"file:///src/sample.{language_id}", language_id, source)
    doc.tree  # parsed once, then only incrementally
    checked = 0
    for step in _random_edits(doc, seed=len(source), steps=300, check_every=10):
        assert str(doc.tree.root_node) == _fresh_sexp(doc), f"tree diverged after edit {step}"
        checked += 1
    assert checked >= 20


def test_several_edits_before_a_parse_are_applied_together():
    doc = Document("file:///a.ts", "typescript", TYPESCRIPT)
    doc.tree
    line = TYPESCRIPT.splitlines().index("  find(id: number): User | undefined {")
    for i, ch in enumerate("const 名前 = 1;\n"):
        doc.apply_change(((line + 1, 4 + i), (line + 1, 4 + i)), ch)
    assert "const 名前 = 1;" in doc.text
    assert str(doc.tree.root_node) == _fresh_sexp(doc)
    assert not doc.has_syntax_errors()


def test_line_index_stays_correct_under_random_edits():
    doc = Document("file:///u.py", "python", PYTHON_UNICODE_CRLF * 3)
    for _ in _random_edits(doc, seed=7, steps=600, check_every=25):
        expected = [0] + [i + 1 for i, ch in enumerate(doc.text) if ch == "\n"]
        assert [doc.line_start(i) for i in range(doc.line_count)] == expected
        encoded = doc.text.encode("utf-8")
        assert [doc.byte_of(s) for s in expected] == [0] + [i + 1 for i, b in enumerate(encoded) if b == 10]


def test_utf16_positions_round_trip_through_emoji_cjk_and_crlf():
    doc = Document("file:///u.py", "python", PYTHON_UNICODE_CRLF)
    for offset in range(len(doc.text) + 1):
        if _splits_crlf(doc.text, offset):
            continue
        line, character = doc.position_at(offset)
        assert doc.offset_at(line, character) == offset
    # 'GREETING = "héllo wörld 👋🏽"': 👋 and 🏽 are two UTF-16 units each.
    line = 1
    assert doc.line_text(line).endswith('👋🏽"')
    assert doc.position_at(doc.line_end(line)) == (line, len('GREETING = "héllo wörld "') + 4)
    assert doc.offset_at(line, len('GREETING = "héllo wörld ') + 2) == doc.line_start(line) + len('GREETING = "héllo wörld 👋')


def test_positions_outside_the_document_raise_position_error():
    doc = Document("file:///u.py", "python", PYTHON_UNICODE_CRLF)
    lines = PYTHON_UNICODE_CRLF.split("\r\n")
    assert doc.line_count == len(lines)
    with pytest.raises(PositionError, match="line 99"):
        doc.offset_at(99, 0)
    with pytest.raises(PositionError):
        doc.offset_at(-1, 0)
    # The line's end is a position (before "\r\n"); one past it is not.
    first = lines[0]
    width = len(first.encode("utf-16-le")) // 2
    assert doc.offset_at(0, width) == len(first)
    with pytest.raises(PositionError, match="UTF-16"):
        doc.offset_at(0, width + 1)
    # '# 在庫管理 🚀': the rocket's two halves are units 7 and 8; 8 splits the pair.
    assert doc.offset_at(0, 7) == first.index("🚀")
    with pytest.raises(PositionError, match="surrogate"):
        doc.offset_at(0, 8)
    assert doc.offset_at(0, 9) == first.index("🚀") + 1
    with pytest.raises(PositionError):
        doc.position_at(len(doc.text) + 1)
    with pytest.raises(PositionError):
        doc.apply_change(((2, 0), (1, 0)), "x")  # ends before it starts


def test_line_ending_and_last_line():
    doc = Document("file:///u.py", "python", "a = 1\r\nb = 2\r\n")
    assert doc.line_ending == "\r\n"
    assert doc.line_count == 3 and doc.line_text(1) == "b = 2" and doc.line_text(2) == ""
    assert doc.offset_at(2, 0) == len(doc.text)
    assert Document("file:///u.py", "python", "a = 1\nb").line_ending == "\n"


def test_full_replacement_and_syntax_errors():
    doc = Document("file:///m.rs", "rust", RUST, version=3)
    assert doc.version == 3 and doc.grammar.name == "rust" and not doc.has_syntax_errors()
    doc.apply_change(None, "fn main() {\n    let x = (1;\n}\n")
    assert doc.has_syntax_errors()
    assert doc.line_count == 4 and doc.offset_at(1, 4) == len("fn main() {\n    ")
    doc.apply_change(((1, 14), (1, 14)), ")")
    assert not doc.has_syntax_errors()


def test_plain_text_has_no_grammar_but_positions_work():
    doc = Document("file:///notes.txt", "plaintext", "first line\nsecond 🚀 line\n")
    assert doc.grammar is None and doc.tree is None and not doc.has_syntax_errors()
    doc.apply_change(((1, 9), (1, 9)), "!")
    assert doc.text == "first line\nsecond 🚀! line\n"
    assert doc.position_at(doc.text.index("!")) == (1, 9)


def test_a_5mb_document_is_kept_as_text_without_parsing():
    unit = PYTHON + "\n"
    text = unit * (5 * 1024 * 1024 // len(unit) + 1)
    started = time.perf_counter()
    doc = Document("file:///huge.py", "python", text)
    assert len(doc.text.encode()) > 5 * 1024 * 1024
    assert doc.grammar is None and doc.tree is None and not doc.has_syntax_errors()
    assert doc.language is not None and doc.language.name == "python"
    last = doc.line_count - 2
    for i in range(50):
        doc.apply_change(((last, i), (last, i)), "x")
    assert doc.line_text(last).startswith("x" * 50)
    doc.apply_change(((1000, 0), (1000, 0)), "inserted\n")
    assert doc.line_text(1000) == "inserted" and doc.position_at(doc.line_start(1001)) == (1001, 0)
    assert time.perf_counter() - started < 2.0


def test_a_document_that_shrinks_below_the_limit_is_parsed_again():
    doc = Document("file:///a.py", "python", PYTHON, max_parse_bytes=len(PYTHON) + 10)
    assert doc.tree is not None
    doc.apply_change(((0, 0), (0, 0)), "# " + "x" * 40 + "\n")
    assert doc.grammar is None and doc.tree is None
    doc.apply_change(((0, 0), (1, 0)), "")
    assert doc.text == PYTHON and str(doc.tree.root_node) == _fresh_sexp(doc)


def _settle(doc: Document, slice_s: float = 0.002, max_slices: int = 10_000) -> int:
    for slices in range(1, max_slices + 1):
        if doc.finish_parse(slice_s):
            return slices
    raise AssertionError("the parse never finished")


def test_a_budgeted_parse_gives_the_edited_tree_and_resumes_where_it_stopped():
    # Opening a docstring at the top turns the whole file into one string: re-parsing it is
    # a full parse, far longer than a zero budget.
    doc = Document("file:///big.py", "python", PYTHON * 40, parse_budget_s=0.0)
    unbudgeted = Document("file:///big.py", "python", PYTHON * 40)  # parses to the end
    first = doc.tree  # the first parse always runs to the end
    assert first is not None and not doc.parse_pending and not first.root_node.has_error
    unbudgeted.tree
    for d in (doc, unbudgeted):
        d.apply_change(((0, 0), (0, 0)), '"""\n')
    tree = doc.tree
    assert doc.parse_pending, "a zero budget cannot finish this parse"
    # The stale tree knows where everything moved (positions), not what the edit changed.
    assert tree.root_node.end_byte == len(doc.text.encode("utf-8"))
    assert not tree.root_node.has_error
    slices = _settle(doc, slice_s=0.001)
    assert slices > 1, "the parse was expected to take several slices"
    assert not doc.parse_pending
    # Where the text has errors, tree-sitter's error recovery depends on where a parse was
    # stopped, so only the verdict is compared; valid code parses to the same tree.
    assert doc.tree.root_node.has_error and unbudgeted.tree.root_node.has_error  # an unclosed docstring
    assert doc.tree.root_node.end_byte == unbudgeted.tree.root_node.end_byte
    doc.apply_change(((0, 0), (1, 0)), "")
    _settle(doc)
    assert str(doc.tree.root_node) == _fresh_sexp(doc)


def test_an_edit_during_an_unfinished_parse_restarts_it_on_the_new_text():
    doc = Document("file:///big.py", "python", PYTHON * 40, parse_budget_s=0.0)
    doc.tree
    doc.apply_change(((0, 0), (0, 0)), '"""\n')
    doc.finish_parse(0.001)
    assert doc.parse_pending
    doc.apply_change(((0, 0), (1, 0)), "")  # the docstring opener goes again
    doc.finish_parse(0.001)  # part of a parse of the new text, not the stopped one
    _settle(doc)
    assert str(doc.tree.root_node) == _fresh_sexp(doc)
    assert not doc.tree.root_node.has_error


def test_parsed_tree_always_matches_the_text():
    doc = Document("file:///big.py", "python", PYTHON * 40, parse_budget_s=0.0)
    doc.tree
    doc.apply_change(((0, 0), (0, 0)), "def broken(:\n")
    assert str(doc.parsed_tree().root_node) == _fresh_sexp(doc)
    assert not doc.parse_pending


def test_one_budget_per_text_however_often_the_tree_is_read(monkeypatch):
    doc = Document("file:///big.py", "python", PYTHON * 40, parse_budget_s=0.0)
    doc.tree
    doc.apply_change(((0, 0), (0, 0)), '"""\n')
    calls = []
    real = Document._parse
    monkeypatch.setattr(Document, "_parse", lambda self, deadline: calls.append(deadline) or real(self, deadline))
    for _ in range(5):
        doc.tree  # a plan reads it many times
    assert len(calls) == 1 and doc.parse_pending
    doc.apply_change(((0, 0), (0, 0)), "x")
    doc.tree
    assert len(calls) == 2  # a new text gets a new budget
    doc.finish_parse(0.001)
    assert len(calls) == 3  # the idle parse is not limited by it
