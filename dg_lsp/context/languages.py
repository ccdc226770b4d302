"""Which tree-sitter grammar a document uses, and the few facts about each language that
the context layer needs (comments, definitions, imports, statement containers, block style).

Grammars come from the per-language wheels (tree-sitter-python, ...) and are loaded on
first use, once per process.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from tree_sitter import Language, Parser


@dataclass(frozen=True)
class Grammar:
    name: str
    language: Language
    comment_prefix: str  # "# ", "// ", "-- "
    style: str  # "indent" (Python), "brace" (C-like), "end" (Lua: blocks close with `end`)
    definition_types: frozenset[str]  # functions, classes, methods: their headers are kept
    import_types: frozenset[str]  # statements kept when the prefix is cut
    block_types: frozenset[str]  # nodes whose children are statements, the root included
    default_indent: str  # used when the buffer shows no indentation of its own
    requires_are_imports: bool = False  # `const x = require("x")`, `local x = require "x"`

    def new_parser(self) -> Parser:
        return Parser(self.language)


@dataclass(frozen=True)
class _Spec:
    module: str
    function: str
    comment_prefix: str
    style: str
    definition_types: tuple[str, ...]
    import_types: tuple[str, ...]
    block_types: tuple[str, ...]
    default_indent: str
    requires_are_imports: bool = False


_JS_DEFINITIONS = ("function_declaration", "generator_function_declaration", "class_declaration", "class",
                   "method_definition", "arrow_function", "function_expression")
_JS_BLOCKS = ("program", "statement_block", "class_body", "switch_case", "switch_default")
_TS_DEFINITIONS = _JS_DEFINITIONS + ("abstract_class_declaration", "interface_declaration", "enum_declaration",
                                     "internal_module", "module")

_SPECS = {
    "python": _Spec("tree_sitter_python", "language", "# ", "indent",
                    ("function_definition", "class_definition"),
                    ("import_statement", "import_from_statement", "future_import_statement"),
                    ("module", "block"), "    "),
    "javascript": _Spec("tree_sitter_javascript", "language", "// ", "brace", _JS_DEFINITIONS,
                        ("import_statement",), _JS_BLOCKS, "  ", requires_are_imports=True),
    "typescript": _Spec("tree_sitter_typescript", "language_typescript", "// ", "brace", _TS_DEFINITIONS,
                        ("import_statement",), _JS_BLOCKS, "  ", requires_are_imports=True),
    "tsx": _Spec("tree_sitter_typescript", "language_tsx", "// ", "brace", _TS_DEFINITIONS,
                 ("import_statement",), _JS_BLOCKS, "  ", requires_are_imports=True),
    "rust": _Spec("tree_sitter_rust", "language", "// ", "brace",
                  ("function_item", "impl_item", "trait_item", "mod_item", "struct_item", "enum_item"),
                  ("use_declaration", "extern_crate_declaration"),
                  ("source_file", "block", "declaration_list"), "    "),
    # Go keeps its package clause with the imports: the model needs both to read the file.
    "go": _Spec("tree_sitter_go", "language", "// ", "brace",
                ("function_declaration", "method_declaration", "func_literal"),
                ("package_clause", "import_declaration"),
                ("source_file", "block", "statement_list"), "\t"),
    "lua": _Spec("tree_sitter_lua", "language", "-- ", "end",
                 ("function_declaration", "function_definition"), (),
                 ("chunk", "block"), "  ", requires_are_imports=True),
}

_LANGUAGE_IDS = {
    "python": "python", "javascript": "javascript", "javascriptreact": "javascript",
    "typescript": "typescript", "typescriptreact": "tsx", "rust": "rust", "go": "go", "lua": "lua",
}
_EXTENSIONS = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript",
    ".cjs": "javascript", ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".rs": "rust", ".go": "go", ".lua": "lua",
}

_loaded: dict[str, Grammar] = {}
_lock = threading.Lock()


def language_for(language_id: str, uri: str = "") -> Grammar | None:
    """The grammar for an LSP languageId, or from the file extension when the id is unknown;
    None for plain text."""
    name = _LANGUAGE_IDS.get(language_id) or _EXTENSIONS.get(_extension(uri))
    return _load(name) if name else None


def _extension(uri: str) -> str:
    path = unquote(urlparse(uri).path) if "://" in uri else uri
    name = path.rsplit("/", 1)[-1].lower()
    return name[name.rfind("."):] if "." in name else ""


def _load(name: str) -> Grammar:
    grammar = _loaded.get(name)
    if grammar is None:
        with _lock:
            grammar = _loaded.get(name)
            if grammar is None:
                spec = _SPECS[name]
                module = importlib.import_module(spec.module)
                language = Language(getattr(module, spec.function)())
                grammar = Grammar(
                    name, language, spec.comment_prefix, spec.style, frozenset(spec.definition_types),
                    frozenset(spec.import_types), frozenset(spec.block_types), spec.default_indent,
                    spec.requires_are_imports,
                )
                _loaded[name] = grammar
    return grammar
