"""What dg-lsp knows about one language, as data: `LanguageSpec` and the two small records
it holds (how a doc comment is written, where a generated test goes).

The algorithms that read these (the context layer's tree walks, the syntax guard, the
definition finder, the test placement) stay generic; a language module only fills in a
`LanguageSpec`. Templates are `string.Template`s (`$name`, `${stem}_test.go`), so the
braces of C-like scaffolds need no escaping.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from tree_sitter import Language, Parser

STYLES = ("indent", "brace", "end")  # how blocks close: by dedenting, with `}`, with `end`


@dataclass(frozen=True)
class DocComment:
    """How a function's documentation is written. `$indent` is the definition's indentation,
    or its body's when `in_body` (a Python docstring opens the body; other languages'
    doc comments precede the definition)."""

    opening: str  # before the model's words, `$indent/**\n$indent * `
    closing: str  # after them
    line_prefix: str  # before each further line of the model's words
    end_marker: str  # the model's words stop here
    in_body: bool = False


@dataclass(frozen=True)
class OwnTestFile:
    """Tests in a file of their own, appended to it when it exists. Templates may use
    `$name` (the function), `$Name` (capitalised), `$stem` and `$suffix` (the file's name
    parts) and the names of `from_source`."""

    path: str  # the test file's name, `test_$stem.py`
    folder: str | None  # `tests`: that folder in the nearest ancestor that has one; else beside the file
    header: str  # imports, written only when the file is new
    opening: str  # the test's first lines, up to where the model writes
    closing: str  # what follows the model's code
    body_indent: str  # the model's further lines get this indentation
    # placeholder -> (regex with one group, default): values read from the file under test
    from_source: Mapping[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class InlineTestModule:
    """Tests in the file under test itself, inside a test module (Rust's
    `#[cfg(test)] mod tests`). Templates as for `OwnTestFile`."""

    module_start: str  # regex: the file has the module; the test goes before the file's last `module_end`
    module_end: str
    module_opening: str  # written, with the test, at the end of a file that lacks the module
    module_closing: str
    opening: str  # the test inside the module
    closing: str
    body_indent: str


@dataclass(frozen=True, kw_only=True, eq=False)
class LanguageSpec:
    """Everything about one language. Node type names are the tree-sitter grammar's;
    tests/languages checks that each exists in it."""

    # -- which documents ------------------------------------------------------------------
    name: str  # "python", "tsx": the grammar's name in dg-lsp
    grammar_module: str  # the grammar wheel's module, "tree_sitter_python"
    grammar_function: str  # its function returning the language, "language"
    language_ids: tuple[str, ...]  # the LSP languageIds that pick this grammar
    extensions: tuple[str, ...]  # lower-case file extensions, for documents whose id is unknown

    # -- how code is written ----------------------------------------------------------------
    comment_prefix: str  # "# ", "// ", "-- "
    style: str  # one of STYLES
    default_indent: str  # used when the buffer shows no indentation of its own
    has_lifetimes: bool = False  # a `'` may start a Rust lifetime, not a character literal

    # -- the context layer's node types -----------------------------------------------------
    definition_types: frozenset[str]  # functions, classes, methods: their headers are kept
    import_types: frozenset[str] = frozenset()  # statements kept when the prefix is cut
    block_types: frozenset[str]  # nodes whose children are statements, the root included
    require_statements: frozenset[str] = frozenset()  # imports when they call `require` (JS, Lua)

    # -- block openers: where a block-mode completion starts -------------------------------
    opener_tokens: frozenset[str]  # a line ending in one of these opens a block ...
    opener_not_in: frozenset[str] = frozenset()  # ... unless the token sits in one of these
    opener_tokens_in: Mapping[str, str] = field(default_factory=dict)  # token -> the parent it opens in
    opener_line: re.Pattern[str]  # the text rule, for while the tree lags behind the buffer

    # -- the syntax guard ----------------------------------------------------------------------
    # parent node type -> text around a statement from it so that it parses alone
    guard_wrappers: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    # -- the commands: docstrings and tests -------------------------------------------------
    function_types: frozenset[str]  # what a docstring or test is written for
    definition_wrappers: frozenset[str] = frozenset()  # `export ...`, `@decorator def`: the doc goes above them
    doc_comment: DocComment
    tests: OwnTestFile | InlineTestModule

    @property
    def language(self) -> Language:
        """The tree-sitter language, loaded from its wheel on first use, once per process."""
        return _load(self)

    def new_parser(self) -> Parser:
        return Parser(self.language)

    def node_types(self) -> frozenset[str]:
        """Every node type name the spec mentions (anonymous tokens such as `{` included)."""
        return (self.definition_types | self.import_types | self.block_types | self.require_statements
                | self.opener_tokens | self.opener_not_in | set(self.opener_tokens_in)
                | set(self.opener_tokens_in.values()) | set(self.guard_wrappers)
                | self.function_types | self.definition_wrappers)


_loaded: dict[str, Language] = {}
_lock = threading.Lock()


def _load(spec: LanguageSpec) -> Language:
    language = _loaded.get(spec.name)
    if language is None:
        with _lock:
            language = _loaded.get(spec.name)
            if language is None:
                module = importlib.import_module(spec.grammar_module)
                language = _loaded[spec.name] = Language(getattr(module, spec.grammar_function)())
    return language
