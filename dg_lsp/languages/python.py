"""Python: indentation blocks, docstrings inside the body, pytest tests in `tests/`."""

import re

from .spec import DocComment, LanguageSpec, OwnTestFile

SPECS = (LanguageSpec(
    name="python",
    grammar_module="tree_sitter_python",
    grammar_function="language",
    language_ids=("python",),
    extensions=(".py", ".pyi"),
    comment_prefix="# ",
    style="indent",
    default_indent="    ",
    definition_types=frozenset({"function_definition", "class_definition"}),
    import_types=frozenset({"import_statement", "import_from_statement", "future_import_statement"}),
    block_types=frozenset({"module", "block"}),
    opener_tokens=frozenset({":"}),
    # A ':' inside these is an expression's, not a block opener's.
    opener_not_in=frozenset({
        "dictionary", "pair", "slice", "subscript", "lambda", "lambda_parameters", "typed_parameter",
        "typed_default_parameter", "format_specifier", "interpolation", "dictionary_comprehension",
    }),
    opener_line=re.compile(
        r"^\s*(?:async\s+)?(?:if|elif|else|for|while|try|except|finally|with|def|class|match|case)\b.*:\s*(?:#.*)?$"),
    # Python needs no wrapper: the guard dedents the statement instead (style "indent").
    function_types=frozenset({"function_definition"}),
    definition_wrappers=frozenset({"decorated_definition"}),
    doc_comment=DocComment('$indent"""', '"""\n', "$indent", '"""', in_body=True),
    tests=OwnTestFile(
        path="test_$stem.py",
        folder="tests",
        header="from $stem import $name\n",
        opening="\n\ndef test_$name():\n    ",
        closing="\n",
        body_indent="    ",
    ),
),)
