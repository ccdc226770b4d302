"""Docstring placement and test placement per language, without a model."""

from types import SimpleNamespace

import pytest

from dg_lsp.context.document import Document
from dg_lsp.server import placement
from dg_lsp.server.commands import CommandService, fit_rewrite
from dg_lsp.server.definitions import DocStyle, enclosing_definition
from dg_lsp.server.placement import for_definition, request_for
from dg_lsp.server.settings import Settings

SOURCES = {
    "python": ("math_utils.py", "import math\n\n\nclass Shapes:\n    def area(self, r):\n        return math.pi * r * r\n", "return"),
    "typescript": ("cart.ts", "export function total(items: number[]): number {\n  return items.reduce((a, b) => a + b, 0);\n}\n", "reduce"),
    "rust": ("lib.rs", "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n", "a + b"),
    "go": ("calc.go", "package calc\n\nfunc Add(a int, b int) int {\n\treturn a + b\n}\n", "return"),
    "lua": ("strings.lua", "local M = {}\n\nfunction M.trim(s)\n  return (s:gsub('^%s+', ''))\nend\n\nreturn M\n", "gsub"),
}


def definition_at(language, tmp_path):
    name, text, needle = SOURCES[language]
    doc = Document((tmp_path / name).as_uri(), language, text)
    return doc, enclosing_definition(doc, text.index(needle))


@pytest.mark.parametrize(
    "language, name, docstring_line, opening",
    [
        ("python", "area", 5, '        """'),
        ("typescript", "total", 0, "/**\n * "),
        ("rust", "add", 0, "/// "),
        ("go", "Add", 2, "// "),
        ("lua", "M.trim", 2, "--- "),
    ],
)
def test_the_function_at_the_cursor_and_where_its_doc_goes(tmp_path, language, name, docstring_line, opening):
    doc, definition = definition_at(language, tmp_path)
    assert definition is not None and definition.name == name
    assert doc.line_of(definition.docstring_offset) == docstring_line
    assert definition.docstring_style().opening == opening


def test_no_function_outside_one(tmp_path):
    doc = Document("file:///x.py", "python", "import os\nx = 1\n")
    assert enclosing_definition(doc, 3) is None
    assert enclosing_definition(Document("file:///x.txt", "plaintext", "def f(): pass\n"), 3) is None


def test_doc_comment_rendering():
    python = DocStyle('    """', '"""\n', "    ", '"""')
    assert python.render('Area of a circle.\n\n    Args:\n        r: radius\n    """ trailing') == (
        '    """Area of a circle.\n\n    Args:\n        r: radius"""\n')
    rust = DocStyle("/// ", "\n", "/// ", "\n\n")
    assert rust.render("Adds two numbers.\n/// Wraps on overflow.\n\nfn other()") == (
        "/// Adds two numbers.\n/// Wraps on overflow.\n")
    assert rust.render("   ") == "/// TODO: describe.\n"


def test_python_tests_go_to_the_tests_folder(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "pkg").mkdir()
    name, text, needle = SOURCES["python"]
    doc = Document((tmp_path / "pkg" / name).as_uri(), "python", text)
    layout = for_definition(doc, enclosing_definition(doc, text.index(needle)), tmp_path / "pkg" / name)
    assert layout.target_uri == (tmp_path / "tests" / "test_math_utils.py").as_uri() and layout.create
    assert layout.prefix.endswith("def test_area():\n    ")
    edit = layout.edit("shapes = Shapes()\n    assert shapes.area(1) == math.pi")
    create, change = edit.document_changes
    assert create.kind == "create"
    assert change.edits[0].new_text.endswith("    assert shapes.area(1) == math.pi\n")


def test_existing_test_file_is_appended_to(tmp_path):
    target = tmp_path / "test_math_utils.py"
    target.write_text("from math_utils import Shapes\n\n\ndef test_old():\n    assert True\n")
    name, text, needle = SOURCES["python"]
    doc = Document((tmp_path / name).as_uri(), "python", text)
    layout = for_definition(doc, enclosing_definition(doc, text.index(needle)), tmp_path / name)
    assert not layout.create and layout.existing.startswith("from math_utils")
    (change,) = layout.edit("assert True").document_changes
    assert change.edits[0].range.start.line == 5  # after the last line


@pytest.mark.parametrize(
    "language, target, head",
    [
        ("go", "calc_test.go", 'package calc\n\nimport "testing"\n\nfunc TestAdd(t *testing.T) {\n\t'),
        ("typescript", "cart.test.ts", 'import { total } from "./cart";\n\ntest("total", () => {\n  '),
        ("lua", "strings_spec.lua", 'local strings = require("strings")\n\ndescribe("M.trim"'),
    ],
)
def test_test_files_follow_each_language(tmp_path, language, target, head):
    doc, definition = definition_at(language, tmp_path)
    layout = for_definition(doc, definition, tmp_path / SOURCES[language][0])
    assert layout.target_uri.endswith("/" + target)
    assert layout.scaffold_head.startswith(head)
    assert SOURCES[language][1].splitlines()[-2] in layout.context or "end" in layout.context


def test_rust_tests_go_into_the_same_file(tmp_path):
    doc, definition = definition_at("rust", tmp_path)
    layout = for_definition(doc, definition, tmp_path / "lib.rs")
    assert layout.target_uri == doc.uri and not layout.create
    assert "#[cfg(test)]\nmod tests {\n    use super::*;" in layout.scaffold_head
    assert layout.scaffold_head.endswith("fn add_works() {\n        ")


@pytest.mark.parametrize("text", [
    "def add(a, b):\nreturn a + b\n",  # the body lost its indentation: no body lines of its own
    "def add(a, b): return a + b\n",  # a one-line function
])
def test_a_python_function_without_body_lines_gets_no_docstring_place(text):
    definition = enclosing_definition(Document("file:///x.py", "python", text), 5)
    assert definition is not None and definition.name == "add"
    assert definition.docstring_offset is None  # not before the `def`, as it once was


@pytest.mark.parametrize("selection, lead, rewritten, expected", [
    # A whole line selected from column 0: the model dropped the indentation, it comes back.
    ("    total = a + b", "", "xxxx", "    xxxx"),
    # Already indented as the selection was: unchanged.
    ("    total = a + b", "", "    total = sum((a, b))", "    total = sum((a, b))"),
    # Selected from the first non-blank character: the line keeps its indentation in the buffer.
    ("total = a + b", "    ", "    total = a+b", "total = a+b"),
    # Several lines: their depth relative to the first line is kept, in the buffer's unit.
    ("    if a:\n        b()\n", "", "if a:\n  b()\n  c()", "    if a:\n        b()\n        c()\n"),
    # A selection that starts after code on its line is left as the model wrote it.
    ("a + b", "    total = ", "b + a", "b + a"),
])
def test_a_rewrite_is_shaped_like_its_selection(selection, lead, rewritten, expected):
    assert fit_rewrite(selection, lead, rewritten, "    ") == expected


def test_the_test_file_is_read_when_placed_not_when_requested(tmp_path):
    doc, definition = definition_at("go", tmp_path)
    pending = request_for(doc, definition, tmp_path / "calc.go")
    (tmp_path / "calc_test.go").write_text('package calc\n\nimport "testing"\n')  # written in between
    layout = pending.place()
    assert not layout.create and layout.existing.startswith("package calc")
    assert layout.scaffold_head.startswith("\nfunc TestAdd(")  # no second header


def test_generate_test_reads_files_only_in_the_model_thread_job(tmp_path, monkeypatch):
    reads = []
    read = placement._read
    monkeypatch.setattr(placement, "_read", lambda path: reads.append(path) or read(path))
    engine = SimpleNamespace(infill=lambda *args, **kwargs: SimpleNamespace(text="assert Add(1, 2) == 3"))
    doc, definition = definition_at("go", tmp_path)
    job = CommandService(None, None, None)._test_job(doc, definition, engine, Settings())
    assert reads == []  # nothing read on the event loop
    edit = job(lambda: False)
    assert reads == [tmp_path / "calc_test.go"]
    assert edit.document_changes[-1].edits[0].new_text.endswith("assert Add(1, 2) == 3\n}\n")
