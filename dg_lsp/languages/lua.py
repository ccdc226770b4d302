"""Lua: blocks close with `end`, `---` doc comments, busted specs in `spec/`."""

import re

from .spec import DocComment, LanguageSpec, OwnTestFile

SPECS = (LanguageSpec(
    name="lua",
    grammar_module="tree_sitter_lua",
    grammar_function="language",
    language_ids=("lua",),
    extensions=(".lua",),
    comment_prefix="-- ",
    style="end",
    default_indent="  ",
    definition_types=frozenset({"function_declaration", "function_definition"}),
    block_types=frozenset({"chunk", "block"}),
    require_statements=frozenset({"variable_declaration", "assignment_statement"}),  # Lua's only imports
    opener_tokens=frozenset({"then", "do", "else", "repeat", "{"}),
    opener_tokens_in={")": "parameters"},  # `function f(x)` opens a body; other `)` do not
    opener_line=re.compile(r"(?:\b(?:then|do|else|repeat)|\{|\bfunction\b.*\))\s*(?:--.*)?$"),
    function_types=frozenset({"function_declaration"}),
    doc_comment=DocComment("$indent--- ", "\n", "$indent--- ", "\n\n"),
    tests=OwnTestFile(
        path="${stem}_spec.lua",
        folder="spec",
        header='local $stem = require("$stem")\n',
        opening='\ndescribe("$name", function()\n  it("works", function()\n    ',
        closing="\n  end)\nend)\n",
        body_indent="    ",
    ),
),)
