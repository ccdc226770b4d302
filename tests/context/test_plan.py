import time

import pytest

from dg_lsp.context.document import Document
from dg_lsp.context.plan import plan_infill
from dg_lsp.context.postprocess import clean_completion
from dg_lsp.context.ring import Snippet

from .samples import GO, LUA, PYTHON, RUST, big_python

CURSOR = "█"


def at_cursor(language_id: str, source: str, uri: str = "") -> tuple[Document, int]:
    offset = source.index(CURSOR)
    doc = Document(uri or f"file:///proj/src/sample.{language_id}", language_id, source.replace(CURSOR, ""))
    return doc, offset


def approx_tokens(text: str) -> int:
    return (len(text) + 2) // 3


def plan_at(language_id: str, source: str, uri: str = "", **kwargs):
    doc, offset = at_cursor(language_id, source, uri)
    return plan_infill(doc, offset, approx_tokens, **kwargs)


@pytest.mark.parametrize("language_id,source,indent,block_indent", [
    ("python", "def total(xs):\n    █\n", "    ", ""),
    ("python", "class A:\n    def f(self):\n        █\n    def g(self):\n        pass\n", "        ", "    "),
    ("python", "for x in items:  # each item\n    █", "    ", ""),
    ("python", "def f():\n█", "    ", ""),  # the editor did not indent: one step deeper
    ("python", "if ready:\n\n    █\n    go()\n", "    ", ""),  # a blank line between is fine
    ("python", "def f():\n█\n    go()\n", "    ", ""),  # at column 0: the body's, from the next line
    # The cursor already in the body: a deeper next line is the body of the line being written.
    ("python", "def f(node):\n    █\n        go(node)\n", "    ", ""),
    ("typescript", "function f(a: number): number {\n  █\n}\n", "  ", ""),
    ("typescript", "export class S {\n  add(u: User): void {\n    █\n  }\n}\n", "    ", "  "),
    ("javascript", "if (ready) {\n    █\n}\n", "    ", ""),
    ("rust", "impl A {\n    fn new() -> Self {\n        █\n    }\n}\n", "        ", "    "),
    ("go", "func main() {\n\t█\n}\n", "\t", ""),
    ("lua", "function M.load(path)\n  █\nend\n", "  ", ""),
    ("lua", "if not file then\n  █\nend\n", "  ", ""),
    ("lua", "for _, v in ipairs(list) do\n  █\nend\n", "  ", ""),
])
def test_block_mode_after_an_opener(language_id, source, indent, block_indent):
    plan = plan_at(language_id, source)
    assert plan.mode == "block"
    assert (plan.indent, plan.block_indent) == (indent, block_indent)
    assert plan.canvas_length == 128  # 2048-token budget: the largest canvas allowed


@pytest.mark.parametrize("language_id,source,typed", [
    ("python", "def f():\n█\n    go()\n", "    "),  # column 0: the whole body indentation
    ("python", "class A:\n    def f(self):\n  █\n", "      "),  # part of it: the rest
    ("go", "func main() {\n█\n}\n", "\t"),
    ("python", "def total(xs):\n    █\n", ""),  # the editor indented the line already
    ("python", "def f():\n█    \n", ""),  # blanks after the cursor: the line is not the editor's to fill
    ("python", "def f():\n    x = 1\n█\n", ""),  # not after an opener: line mode, as typed
])
def test_an_empty_line_after_an_opener_gets_the_indentation_an_editor_would_type(language_id, source, typed):
    plan = plan_at(language_id, source)
    assert plan.typed_indent == typed
    doc, offset = at_cursor(language_id, source)
    assert plan.prefix == doc.text[:offset] + typed  # the prompt ends where the auto-indent would


def test_once_typed_the_indentation_gives_the_same_prompt_and_code_extends_it():
    doc = Document("file:///proj/src/f.py", "python", "def f(xs):\n\n    return 1\n")
    offset = len("def f(xs):\n")
    at_column_0 = plan_infill(doc, offset, approx_tokens)
    plans = [plan_infill(doc, offset, approx_tokens) for offset in _type(doc, offset, "    total")]
    indented = plans[3]  # the user typed the four blanks
    assert at_column_0.prefix == indented.prefix == "def f(xs):\n    "
    assert (at_column_0.typed_indent, indented.typed_indent, indented.mode) == ("    ", "", "block")
    assert plans[-1].prefix == "def f(xs):\n    total"


@pytest.mark.parametrize("language_id,source", [
    ("python", "x = compute(█)\n"),
    ("python", "def f():\n    x = 1\n    █\n"),  # empty line, but after a statement
    ("python", "config = {\n    'a': 1,\n    █\n}\n"),
    ("python", "    return [x for x in y if x]█\n"),
    ("typescript", "const total = items.reduce((a, b) => a + b, 0);\n█\n"),
    ("rust", "let x = vec![1, 2, 3];\n█"),
    ("go", "x := 1\n\t█\n"),
    ("lua", "local n = 0\n█\n"),
    ("plaintext", "Dear team:\n█\n"),  # plain text: always the line
])
def test_line_mode_elsewhere(language_id, source):
    plan = plan_at(language_id, source)
    assert plan.mode == "line"
    assert plan.canvas_length == 24


def test_canvas_follows_budget_and_max_canvas():
    block = "def f():\n    █\n"
    assert plan_at("python", block, budget_tokens=512).canvas_length == 64
    assert plan_at("python", block, budget_tokens=4096, max_canvas=256).canvas_length == 256
    assert plan_at("python", block, max_canvas=16).canvas_length == 16
    assert plan_at("python", "x = █", max_canvas=16).canvas_length == 16


def test_a_small_file_is_sent_whole():
    source = PYTHON.replace("        taken = min", "        █taken = min")
    doc, offset = at_cursor("python", source)
    plan = plan_infill(doc, offset, approx_tokens)
    assert plan.prefix == doc.text[:offset] and plan.suffix == doc.text[offset:]
    assert plan.context == "" and plan.cursor_offset == offset


def _type(doc: Document, offset: int, text: str):
    """Type `text` at `offset` one character at a time, as LSP changes; yields offsets."""
    for ch in text:
        line, character = doc.position_at(offset)
        doc.apply_change(((line, character), (line, character)), ch)
        offset += 1
        yield offset


def _long_function(statements: int) -> str:
    body = "".join(f"    total += weights[{i}] * values[{i}]\n" for i in range(statements))
    return "import math\n\n\ndef weighted(values, weights):\n    total = 0\n" + body + "    return total\n"


def _deep_cursor(source: str, marker: str) -> int:
    at = source.index(marker, len(source) * 2 // 3)
    return at + len(marker)


@pytest.mark.parametrize("source,marker,indent", [
    (big_python(3000), "        done = 0\n", "        "),
    (_long_function(1500), "    total += weights[1000] * values[1000]\n", "    "),
], ids=["classes", "long-function"])
@pytest.mark.parametrize("typed", ["total = compute(a, [", "for job in sorted(jobs):"])
def test_typing_at_the_cursor_only_extends_the_prompt(source, marker, indent, typed):
    doc = Document("file:///proj/src/big.py", "python", source)
    offset = source.index(marker, len(source) // 2) + len(marker)
    doc.apply_change((doc.position_at(offset), doc.position_at(offset)), indent + "\n")
    offset += len(indent)
    snippets = [Snippet("file:///proj/src/util.py", "def helper():\n    return 1\n")]
    plan = plan_infill(doc, offset, approx_tokens, snippets=snippets)
    assert len(plan.prefix) < offset  # the prefix was cut...
    assert plan.prefix.startswith(source[: source.index("\n\n") + 2])  # ...and kept the imports
    for offset in _type(doc, offset, typed):
        following = plan_infill(doc, offset, approx_tokens, snippets=snippets)
        # Everything before the cursor in the last prompt is the start of this one.
        assert (following.context + following.prefix).startswith(plan.context + plan.prefix)
        assert following.prefix.endswith(doc.text[offset - 30 : offset])
        assert following.suffix == plan.suffix  # the text after the cursor did not change
        plan = following
    assert plan.prefix.endswith(typed)


def test_typing_in_a_brace_language_only_extends_the_prompt():
    method = "  run(jobs: string[]): number {\n    let done = 0;\n    for (const job of jobs) {\n      done += job.length;\n    }\n    return done;\n  }\n\n"
    source = 'import { readFileSync } from "fs";\n\nexport class Jobs {\n' + method * 150 + "}\n"
    doc = Document("file:///proj/src/jobs.ts", "typescript", source)
    offset = _deep_cursor(source, "    let done = 0;\n")
    plan = plan_infill(doc, offset, approx_tokens, budget_tokens=1024)
    assert plan.prefix.startswith('import { readFileSync } from "fs";\n\nexport class Jobs {\n')
    for offset in _type(doc, offset, "    const seen = new Set<string>(["):
        following = plan_infill(doc, offset, approx_tokens, budget_tokens=1024)
        assert following.prefix.startswith(plan.prefix)
        plan = following


def test_typing_within_a_line_never_moves_the_cut():
    # Wherever the cursor is, a line typed there keeps the prefix's start: the cut depends
    # on where the cursor's line starts, not on how far into it the cursor is.
    source = _long_function(800)
    doc = Document("file:///proj/src/weights.py", "python", source)
    for row in range(300, 800, 17):
        offset = doc.line_end(row)
        plan = plan_infill(doc, offset, approx_tokens, budget_tokens=512)
        assert len(plan.prefix) < offset
        for offset in _type(doc, offset, "  # checked, see 📈"):
            following = plan_infill(doc, offset, approx_tokens, budget_tokens=512)
            assert following.prefix.startswith(plan.prefix), f"the cut moved while typing on line {row}"
            plan = following


def test_the_cut_prefers_top_level_definitions():
    source = big_python(3000)
    doc = Document("file:///proj/src/big.py", "python", source)
    head = source[: source.index("\n\n") + 2]
    for row in range(1500, 2500, 97):
        offset = doc.line_end(row)
        plan = plan_infill(doc, offset, approx_tokens)
        rest = plan.prefix[len(head):]
        assert plan.prefix.startswith(head)
        # No enclosing header was needed: the cut itself is a top-level definition.
        assert rest.startswith(("class Worker", "def schedule_")) and source[:offset].endswith(rest), rest[:80]


def test_the_prefix_cut_moves_rarely_while_typing():
    # Every line of a long body is a statement at the same depth: a cut following the
    # cursor character by character would move every line or so.
    source = _long_function(600)
    doc = Document("file:///proj/src/weights.py", "python", source)
    offset = source.index("    return total")
    doc.apply_change((doc.position_at(offset), doc.position_at(offset)), "    \n")
    offset += 4
    previous, moves = plan_infill(doc, offset, approx_tokens, budget_tokens=512).prefix, 0
    typed = "result = math.fsum(x * w for x, w in zip(values, weights))\n    " * 5
    for offset in _type(doc, offset, typed):
        prefix = plan_infill(doc, offset, approx_tokens, budget_tokens=512).prefix
        moves += not prefix.startswith(previous)
        previous = prefix
    # The cut moves in steps of 1/8 of the prefix's ~1,300 characters: once per 168 typed.
    assert moves <= len(typed) // 168 + 1


def test_the_prefix_fits_the_budget_and_the_tokenizer_is_asked_rarely():
    calls = []

    def dense_tokens(text: str) -> int:  # denser than the 3.5 characters per token guessed
        calls.append(len(text))
        return (len(text) + 1) // 2

    source = big_python(3000)
    doc = Document("file:///proj/src/big.py", "python", source)
    offset = _deep_cursor(source, "        done = 0\n")
    plan = plan_infill(doc, offset, dense_tokens, budget_tokens=1000)
    assert dense_tokens(plan.prefix) <= 750
    assert 2 <= len(calls) <= 4  # measured, found too long, cut again
    calls.clear()
    for offset in _type(doc, offset, "value = 1"):
        plan = plan_infill(doc, offset, dense_tokens, budget_tokens=1000)
    assert calls == []  # the cut did not move: nothing to re-count
    assert len(plan.suffix) <= 250 * 3.5


def test_the_suffix_ends_before_a_statement():
    source = big_python(3000)
    doc = Document("file:///proj/src/big.py", "python", source)
    offset = _deep_cursor(source, "        done = 0\n")
    plan = plan_infill(doc, offset, approx_tokens)
    end = offset + len(plan.suffix)
    assert doc.text[offset:end] == plan.suffix and plan.suffix.endswith("\n")
    next_line = doc.line_text(doc.line_of(end))
    assert next_line.strip() and not next_line.startswith(" " * 12)  # a statement, not deep inside one


LONG_BODIES = {
    "python": ("import os\nfrom typing import Any\n\n\nclass Pipeline:\n    def run(self, data: list[Any]) -> int:\n",
               "        total = len(data) + {i}\n", "", ["class Pipeline:", "    def run(self, data: list[Any]) -> int:"]),
    "typescript": ('import { readFileSync } from "fs";\n\nexport class Pipeline {\n  run(data: string[]): number {\n',
                   "    const total{i} = data.length + {i};\n", "  }\n}\n",
                   ["export class Pipeline {", "  run(data: string[]): number {"]),
    "rust": ("use std::fs;\n\nimpl Pipeline {\n    pub fn run(&self, data: &[u8]) -> usize {\n",
             "        let total{i} = data.len() + {i};\n", "    }\n}\n",
             ["impl Pipeline {", "    pub fn run(&self, data: &[u8]) -> usize {"]),
    "go": ('package pipeline\n\nimport "fmt"\n\nfunc (p *Pipeline) Run(data []byte) int {\n',
           "\ttotal{i} := len(data) + {i}\n", "}\n", ["func (p *Pipeline) Run(data []byte) int {"]),
    "lua": ('local json = require("json")\n\nfunction M.run(data)\n', "  local total{i} = #data + {i}\n", "end\n",
            ["function M.run(data)"]),
}


@pytest.mark.parametrize("language_id", sorted(LONG_BODIES))
def test_a_cut_prefix_keeps_imports_and_enclosing_headers(language_id):
    head, statement, tail, headers = LONG_BODIES[language_id]
    body = "".join(statement.format(i=i) for i in range(400))
    doc = Document(f"file:///proj/p.{language_id}", language_id, head + body + tail)
    offset = len(head) + len(body) - 1  # end of the last statement
    plan = plan_infill(doc, offset, approx_tokens, budget_tokens=512)
    # Kept statements come one per line (Go's package clause counts with its imports).
    imports = head.split("\n\n")[0] + "\n" if language_id != "go" else 'package pipeline\nimport "fmt"\n'
    kept = imports + "\n" + "".join(h + "\n" for h in headers)
    assert plan.prefix.startswith(kept)
    rest = plan.prefix[len(kept):]
    assert doc.text[:offset].endswith(rest) and len(rest) > 500  # ...then whole statements
    assert rest.startswith(statement.split("{i}")[0])
    assert approx_tokens(plan.prefix) <= 384


def test_context_names_each_snippet_with_a_comment():
    snippets = [Snippet("file:///proj/src/util.py", "def helper():\n    return 1\n"),
                Snippet("file:///proj/lib/strings.py", "SEP = ','")]
    plan = plan_at("python", "x = █\n", snippets=snippets, uri="file:///proj/src/app.py")
    assert plan.context == "# path: util.py\ndef helper():\n    return 1\n# path: lib/strings.py\nSEP = ','\n"
    ts_plan = plan_at("typescript", "const x = █;\n", snippets=snippets[:1])
    assert ts_plan.context.startswith("// path: util.py\n")
    lua_plan = plan_at("lua", "local x = █\n", snippets=snippets[:1])
    assert lua_plan.context.startswith("-- path: util.py\n")


def test_context_stays_within_its_share_of_the_budget():
    snippets = [Snippet(f"file:///proj/src/m{i}.rs", RUST) for i in range(10)]
    plan = plan_at("rust", "fn main() {\n    █\n}\n", snippets=snippets, budget_tokens=1024)
    assert 0 < len(plan.context) <= 1024 // 4 * 3.5
    assert plan.context.startswith("// path: m0.rs\nuse std::collections::HashMap;\n")


def test_crlf_documents_give_lf_prompts():
    doc = Document("file:///a.go", "go", GO.replace("\n", "\r\n"))
    offset = doc.offset_at(20, 1)
    plan = plan_infill(doc, offset, approx_tokens)
    assert "\r" not in plan.prefix + plan.suffix
    assert plan.prefix + plan.suffix == GO


def test_plain_text_is_cut_at_line_boundaries():
    text = "".join(f"Line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(2000))
    doc = Document("file:///notes.txt", "plaintext", text)
    offset = doc.line_start(1500) + 10
    plan = plan_infill(doc, offset, approx_tokens, budget_tokens=256)
    assert plan.mode == "line" and plan.prefix.startswith("Line ") and plan.suffix.endswith("\n")
    assert text[:offset].endswith(plan.prefix) and text[offset:].startswith(plan.suffix)
    assert clean_completion(doc, plan, "brown cat\nmore") == "brown cat"


def test_a_5mb_document_plans_and_cleans_fast():
    text = (LUA + "\n") * (5 * 1024 * 1024 // (len(LUA) + 1) + 1)
    doc = Document("file:///huge.lua", "lua", text)
    offset = doc.line_start(doc.line_count // 2) + 2
    started = time.perf_counter()
    for _ in range(20):
        plan = plan_infill(doc, offset, approx_tokens)
        cleaned = clean_completion(doc, plan, "x = 1\nmore")
    elapsed = time.perf_counter() - started
    assert plan.mode == "line" and cleaned == "x = 1"
    assert 1000 < len(plan.prefix) < 2048 * 3.5 and text[:offset].endswith(plan.prefix)
    assert elapsed < 0.5, f"20 requests took {elapsed:.3f}s"


@pytest.mark.parametrize("language_id,opener,body_line,mode", [
    ("python", "def total(xs):\n", "    █\n", "block"),
    ("python", "for x in items:  # each item\n", "    █\n", "block"),
    ("python", "config = {'a':\n", "    █\n", "line"),
    ("python", "x = 1\n", "█\n", "line"),
    ("typescript", "function f(a: number): number {\n", "  █\n", "block"),
    ("typescript", "const total = items.reduce((a, b) => a + b, 0);\n", "█\n", "line"),
    ("lua", "for _, v in ipairs(list) do\n", "  █\n", "block"),
    ("lua", "local n = 0\n", "█\n", "line"),
])
def test_span_while_the_tree_lags_behind_the_text(language_id, opener, body_line, mode):
    # A long file parsed once, then the opener typed with a zero parse budget: the tree does
    # not know the new lines, so the opener is judged by its text.
    filler = {"python": "x = 1\n", "typescript": "let x = 1;\n", "lua": "local x = 1\n"}[language_id] * 3000
    doc = Document(f"file:///proj/src/sample.{language_id}", language_id, filler, parse_budget_s=0.0)
    doc.tree
    line = filler.count("\n")
    doc.apply_change(((line, 0), (line, 0)), opener + body_line.replace(CURSOR, ""))
    offset = len(filler) + len(opener) + body_line.index(CURSOR)
    plan = plan_infill(doc, offset, approx_tokens)
    assert doc.parse_pending, "the zero budget was meant to leave the tree behind"
    assert plan.mode == mode
