"""Rust: brace blocks, `///` doc comments, tests in the file's own `#[cfg(test)] mod tests`."""

import re

from .spec import DocComment, LanguageSpec, InlineTestModule

_IN_A_FUNCTION = ("fn _dg() {\n", "\n}\n")  # a statement from a function body parses only inside one

SPECS = (LanguageSpec(
    name="rust",
    grammar_module="tree_sitter_rust",
    grammar_function="language",
    language_ids=("rust",),
    extensions=(".rs",),
    comment_prefix="// ",
    style="brace",
    default_indent="    ",
    has_lifetimes=True,
    definition_types=frozenset({"function_item", "impl_item", "trait_item", "mod_item", "struct_item", "enum_item"}),
    import_types=frozenset({"use_declaration", "extern_crate_declaration"}),
    block_types=frozenset({"source_file", "block", "declaration_list"}),
    opener_tokens=frozenset({"{"}),
    opener_line=re.compile(r"\{\s*(?://.*)?$"),
    guard_wrappers={"block": _IN_A_FUNCTION},
    function_types=frozenset({"function_item"}),
    doc_comment=DocComment("$indent/// ", "\n", "$indent/// ", "\n\n"),
    tests=InlineTestModule(
        module_start=r"#\[cfg\(test\)\]\s*mod tests\s*\{",
        module_end="}",  # the module is conventionally last in the file
        module_opening="\n#[cfg(test)]\nmod tests {\n    use super::*;\n",
        module_closing="}\n",
        opening="\n    #[test]\n    fn ${name}_works() {\n        ",
        closing="\n    }\n",
        body_indent="        ",
    ),
),)
