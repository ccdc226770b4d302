import pytest

from dg_lsp.context.document import Document
from dg_lsp.context.plan import plan_infill
from dg_lsp.context.postprocess import clean_completion

from .samples import PYTHON, big_python

CURSOR = "█"


def clean(language_id: str, source: str, completion: str, mode: str | None = None) -> str | None:
    offset = source.index(CURSOR)
    doc = Document(f"file:///proj/sample.{language_id}", language_id, source.replace(CURSOR, ""))
    plan = plan_infill(doc, offset, lambda text: len(text) // 3)
    if mode is not None:
        assert plan.mode == mode
    return clean_completion(doc, plan, completion)


@pytest.mark.parametrize("completion", ["", "   ", "\n\n  \t\n"])
def test_empty_completions_are_dropped(completion):
    assert clean("python", "x = █\n", completion) is None
    assert clean("python", "def f():\n    █\n", completion) is None


@pytest.mark.parametrize("language_id,source,completion", [
    ("python", "def f():\n    x = 1\n    █\n", "#"),
    ("python", "def f():\n    x = 1\n    █\n", "# "),
    ("python", "x = 1\n█\n", "#:"),
    ("typescript", "function f() {\n  █\n}\n", "//"),
    ("rust", "fn f() {\n    █\n}\n", "///"),
    ("lua", "local x = 1\n█\n", "--"),
])
def test_a_comment_marker_with_no_words_is_dropped(language_id, source, completion):
    assert clean(language_id, source, completion) is None


def test_a_comment_with_words_and_code_starting_like_one_stay():
    assert clean("python", "def f():\n    x = 1\n    █\n", "# the total", mode="line") == "# the total"
    assert clean("typescript", "function f() {\n  █\n}\n", "// 2 more") == "// 2 more"
    assert clean("lua", "local x = 1\n█\n", "-x") == "-x"  # not the marker
    assert clean("python", "x = 1\n█\n", "'#'") == "'#'"


# -- the text after the cursor is not repeated ------------------------------------------

@pytest.mark.parametrize("source,completion,expected", [
    ("print(█)\n", "foo(x))", "foo(x)"),  # one `)` too many: it is the suffix's
    ("print(█)\n", "foo(x)", "foo(x)"),  # balanced with the suffix's `)`: kept
    ("result = █)\n", "foo(x)))", "foo(x))"),  # still one too many, not the brace match
    ('print("hello █")\n', 'world")', "world"),
    ("if items█:\n    pass\n", " and ready:", " and ready"),
])
def test_the_rest_of_the_line_is_not_repeated(source, completion, expected):
    assert clean("python", source, completion, mode="line") == expected


def test_a_repeated_semicolon_is_dropped():
    assert clean("typescript", "let total = █;\n", "compute(a, b);", mode="line") == "compute(a, b)"


def test_completion_lines_repeating_the_next_lines_are_dropped():
    source = "def scale(x):\n    █\n    return y\n"
    assert clean("python", source, "y = x * 2\n    return y", mode="block") == "y = x * 2"
    assert clean("python", source, "y = x * 2\n    return y\n\nprint(scale(3))", mode="block") == "y = x * 2"
    # A line that only happens to match, with different lines after it, stays.
    source = "def scale(x):\n    █\n    return y\n    print(y)\n"
    assert clean("python", source, "return y\n    y = 3\n    return y", mode="block") is not None


def test_a_line_completion_repeating_the_next_line_is_dropped():
    source = "def f():\n    x = 1\n    █\n    return x + 1\n"
    assert clean("python", source, "return x + 1", mode="line") is None
    assert clean("python", source, "x += 2", mode="line") == "x += 2"


def test_a_line_completion_indenting_an_indented_line_further_is_dropped():
    source = "def f(node):\n    node.check()\n    █\n    return node\n"
    assert clean("python", source, "    self.visit(node)", mode="line") is None
    assert clean("python", source, "\tself.visit(node)", mode="line") is None
    assert clean("python", source, "self.visit(node)", mode="line") == "self.visit(node)"
    # At column 0 the completion brings the line's indentation itself, and keeps it.
    assert clean("python", "def f(node):\n    node.check()\n█\n    return node\n", "    x = 1",
                 mode="line") == "    x = 1"


# -- the span ---------------------------------------------------------------------------

def test_line_mode_stops_at_the_first_newline():
    assert clean("python", "total = █\n", "price * count\nprint(total)", mode="line") == "price * count"
    assert clean("python", "total = 1█\n", "\nprint(total)", mode="line") is None


def test_block_mode_stops_where_python_dedents():
    source = "def area(w, h):\n    █\n\n\nprint(area(2, 3))\n"
    completion = "result = w * h\n    return result\n\n\ndef perimeter(w, h):\n    return 2 * (w + h)\n"
    assert clean("python", source, completion, mode="block") == "result = w * h\n    return result"


def test_block_mode_drops_leading_blank_lines():
    assert clean("python", "def f():\n    █\n", "\n\n    return 1\n", mode="block") == "return 1"


def test_block_mode_stops_at_a_brace_the_block_did_not_open():
    source = "function double(a: number): number {\n  █\n}\n"
    completion = "const b = a * 2;\n  if (b > 10) {\n    return 10;\n  }\n  return b;\n}\n\nfunction triple(a) {}\n"
    expected = "const b = a * 2;\n  if (b > 10) {\n    return 10;\n  }\n  return b;"
    assert clean("typescript", source, completion, mode="block") == expected


def test_braces_in_strings_comments_and_rust_lifetimes_do_not_count():
    source = "impl Greeter {\n    fn greet(&self) {\n        █\n    }\n}\n"
    completion = 'let open: &\'static str = "{"; // {\n        println!("{}", open);\n    }\n}\n'
    expected = 'let open: &\'static str = "{"; // {\n        println!("{}", open);'
    assert clean("rust", source, completion, mode="block") == expected


def test_the_closing_brace_is_kept_when_the_buffer_lacks_it():
    # A brace language, with nothing closing the function yet.
    source = "function double(a) {\n  █\n\nmodule.exports = double;\n"
    assert clean("javascript", source, "return a * 2;\n}\nfoo();", mode="block") == "return a * 2;\n}"


def test_lua_blocks_end_at_end():
    source = "function M.area(w, h)\n  █\nend\n"
    completion = "local a = w * h\n  return a\nend\n\nfunction M.other() end\n"
    assert clean("lua", source, completion, mode="block") == "local a = w * h\n  return a"
    # Without an `end` after the cursor, the completion's own `end` is kept.
    source = "function M.area(w, h)\n  █\n"
    assert clean("lua", source, completion, mode="block") == "local a = w * h\n  return a\nend"


# -- indentation ------------------------------------------------------------------------

def test_two_space_completions_take_the_buffers_four_spaces():
    source = "def show(xs):\n    █\n"
    completion = "for x in xs:\n      if x:\n        print(x)"
    assert clean("python", source, completion, mode="block") == "for x in xs:\n        if x:\n            print(x)"


def test_space_completions_take_the_buffers_tabs():
    source = "package main\n\nfunc count() {\n\t█\n}\n"
    completion = "for i := 0; i < 3; i++ {\n        fmt.Println(i)\n    }"
    assert clean("go", source, completion, mode="block") == "for i := 0; i < 3; i++ {\n\t\tfmt.Println(i)\n\t}"


def test_a_completion_missing_its_indentation_is_moved_to_the_body():
    # The editor left the cursor at column 0 and the model wrote the body unindented.
    assert clean("python", "def f():\n█\n", "x = 1\nreturn x", mode="block") == "    x = 1\n    return x"
    # Already right: unchanged.
    assert clean("python", "def f():\n█\n", "    x = 1\n    return x", mode="block") == "    x = 1\n    return x"


# -- syntax guard -----------------------------------------------------------------------

def test_a_clean_buffer_keeps_the_longest_clean_prefix_of_lines():
    source = "def f(x):\n    █\n"
    assert clean("python", source, "y = x + 1\n    return (y", mode="block") == "y = x + 1"
    assert clean("python", source, "return (", mode="block") is None
    assert clean("python", source, "y = x + 1\n    return y", mode="block") == "y = x + 1\n    return y"


def test_the_guard_checks_statements_inside_a_big_file():
    text = big_python(3000)
    marker = "        done = 0\n"
    offset = text.index(marker, len(text) // 2) + len(marker)
    doc = Document("file:///big.py", "python", text[:offset] + "        \n" + text[offset:])
    plan = plan_infill(doc, offset + 8, lambda t: len(t) // 3)
    assert not doc.has_syntax_errors()
    assert clean_completion(doc, plan, "skipped = []") == "skipped = []"
    assert clean_completion(doc, plan, "skipped = [") is None


@pytest.mark.parametrize("language_id,source", [
    ("rust", "fn main() {\n    let v = vec![1, 2];\n    █\n}\n"),
    ("go", "package main\n\nfunc main() {\n\tv := []int{1, 2}\n\t█\n}\n"),
    ("typescript", "class A {\n  x = 1;\n  █\n}\n"),
])
def test_the_guard_in_brace_languages(language_id, source):
    good = {"rust": "let n = v.len();", "go": "n := len(v)", "typescript": "y = 2;"}[language_id]
    bad = {"rust": "let n = v.len(;", "go": "n := len(v", "typescript": "y = (2;"}[language_id]
    assert clean(language_id, source, good, mode="line") == good
    assert clean(language_id, source, bad, mode="line") is None


def test_a_buffer_with_errors_is_not_guarded():
    source = "def f(x):\n    █\n    z = (\n"
    assert clean("python", source, "return (y", mode="block") == "return (y"


def test_crlf_buffers_get_crlf_completions():
    signature = "    def remove(self, sku: str, count: int) -> int:\n"
    source = PYTHON.replace(signature, signature + "        █\n").replace("\n", "\r\n")
    assert clean("python", source, "if count < 0:\n            raise ValueError(count)") == (
        "if count < 0:\r\n            raise ValueError(count)"
    )


def test_a_block_stops_before_a_line_repeating_the_one_before_it():
    source = "def count(s):\n    █\n    return 0\n"
    looped = "for i in range(1, 1):\n        for i in range(1, 1):\n            for i in range(1, 1):"
    assert clean("python", source, looped, mode="block") == "for i in range(1, 1):"
    assert clean("python", source, "n = 0\n    n = 0\n    print(n)", mode="block") == "n = 0"
    # A line repeated further down, with other lines between, is code, not a loop.
    kept = "n = 0\n    for c in s:\n        n = 0\n    print(n)"
    assert clean("python", source, kept, mode="block") == kept


def test_bare_words_and_closers_may_repeat():
    from dg_lsp.context.overlap import cut_at_self_repetition

    lua = "if a then\n  if b then\n    f()\n  end\nend"
    assert cut_at_self_repetition(lua) == lua
    braces = "if (a) {\n  if (b) {\n    f();\n  }\n}\n}"
    assert cut_at_self_repetition(braces) == braces
    assert cut_at_self_repetition("x = 1\n\nx = 1\ny = 2") == "x = 1\n"
