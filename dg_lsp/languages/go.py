"""Go: brace blocks, `//` doc comments, `<file>_test.go` beside the file in its package."""

import re

from .spec import DocComment, LanguageSpec, OwnTestFile

_IN_A_FUNCTION = ("func _dg() {\n", "\n}\n")  # a statement from a function body parses only inside one

SPECS = (LanguageSpec(
    name="go",
    grammar_module="tree_sitter_go",
    grammar_function="language",
    language_ids=("go",),
    extensions=(".go",),
    comment_prefix="// ",
    style="brace",
    default_indent="\t",
    definition_types=frozenset({"function_declaration", "method_declaration", "func_literal"}),
    # The package clause is kept with the imports: the model needs both to read the file.
    import_types=frozenset({"package_clause", "import_declaration"}),
    block_types=frozenset({"source_file", "block", "statement_list"}),
    opener_tokens=frozenset({"{"}),
    opener_line=re.compile(r"\{\s*(?://.*)?$"),
    guard_wrappers={"block": _IN_A_FUNCTION, "statement_list": _IN_A_FUNCTION},
    function_types=frozenset({"function_declaration", "method_declaration"}),
    doc_comment=DocComment("$indent// ", "\n", "$indent// ", "\n\n"),
    tests=OwnTestFile(
        path="${stem}_test.go",
        folder=None,
        header='package $package\n\nimport "testing"\n',
        opening="\nfunc Test$Name(t *testing.T) {\n\t",
        closing="\n}\n",
        body_indent="\t",
        from_source={"package": (r"^package\s+(\w+)", "main")},
    ),
),)
