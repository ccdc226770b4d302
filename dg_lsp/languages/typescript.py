"""TypeScript and TSX: JavaScript's rules plus TypeScript's own declarations; two grammars
from one wheel."""

from dataclasses import replace

from .javascript import DEFINITION_TYPES
from .javascript import SPECS as JAVASCRIPT

_TYPESCRIPT_DEFINITIONS = DEFINITION_TYPES | {"abstract_class_declaration", "interface_declaration",
                                              "enum_declaration", "internal_module", "module"}
_BASE = replace(JAVASCRIPT[0], grammar_module="tree_sitter_typescript", definition_types=_TYPESCRIPT_DEFINITIONS)

SPECS = (
    replace(_BASE, name="typescript", grammar_function="language_typescript", language_ids=("typescript",),
            extensions=(".ts", ".mts", ".cts")),
    replace(_BASE, name="tsx", grammar_function="language_tsx", language_ids=("typescriptreact",),
            extensions=(".tsx",)),
)
