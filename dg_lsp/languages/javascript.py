"""JavaScript (and JSX): brace blocks, JSDoc comments, `<file>.test.js` beside the file."""

import re

from .spec import DocComment, LanguageSpec, OwnTestFile

# Shared with typescript.py, which extends them.
DEFINITION_TYPES = frozenset({"function_declaration", "generator_function_declaration", "class_declaration",
                              "class", "method_definition", "arrow_function", "function_expression"})
BLOCK_TYPES = frozenset({"program", "statement_block", "class_body", "switch_case", "switch_default"})
FUNCTION_TYPES = frozenset({"function_declaration", "method_definition", "generator_function_declaration"})
BRACE_OPENER_LINE = re.compile(r"\{\s*(?://.*)?$")
# A class member parses alone only inside a class.
GUARD_WRAPPERS = {"class_body": ("class _Dg {\n", "\n}\n")}
JSDOC = DocComment("$indent/**\n$indent * ", "\n$indent */\n", "$indent * ", "*/")
TEST_FILE = OwnTestFile(
    path="$stem.test$suffix",
    folder=None,
    header='import { $name } from "./$stem";\n',
    opening='\ntest("$name", () => {\n  ',
    closing="\n});\n",
    body_indent="  ",
)

SPECS = (LanguageSpec(
    name="javascript",
    grammar_module="tree_sitter_javascript",
    grammar_function="language",
    language_ids=("javascript", "javascriptreact"),
    extensions=(".js", ".jsx", ".mjs", ".cjs"),
    comment_prefix="// ",
    style="brace",
    default_indent="  ",
    definition_types=DEFINITION_TYPES,
    import_types=frozenset({"import_statement"}),
    block_types=BLOCK_TYPES,
    require_statements=frozenset({"lexical_declaration", "variable_declaration"}),
    opener_tokens=frozenset({"{"}),
    opener_line=BRACE_OPENER_LINE,
    guard_wrappers=GUARD_WRAPPERS,
    function_types=FUNCTION_TYPES,
    definition_wrappers=frozenset({"export_statement"}),
    doc_comment=JSDOC,
    tests=TEST_FILE,
),)
