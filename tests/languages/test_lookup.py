"""LSP languageIds and file extensions to language specs."""

import pytest

from dg_lsp.languages import language_for


@pytest.mark.parametrize("language_id,name,comment,style", [
    ("python", "python", "# ", "indent"),
    ("javascript", "javascript", "// ", "brace"),
    ("javascriptreact", "javascript", "// ", "brace"),
    ("typescript", "typescript", "// ", "brace"),
    ("typescriptreact", "tsx", "// ", "brace"),
    ("rust", "rust", "// ", "brace"),
    ("go", "go", "// ", "brace"),
    ("lua", "lua", "-- ", "end"),
])
def test_language_ids(language_id, name, comment, style):
    grammar = language_for(language_id)
    assert (grammar.name, grammar.comment_prefix, grammar.style) == (name, comment, style)


@pytest.mark.parametrize("uri,name", [
    ("file:///src/app.py", "python"), ("file:///src/App.JSX", "javascript"), ("file:///src/m.mjs", "javascript"),
    ("file:///src/m.cjs", "javascript"), ("file:///src/a.ts", "typescript"), ("file:///src/A.tsx", "tsx"),
    ("file:///src/lib.rs", "rust"), ("file:///src/main.go", "go"), ("file:///src/init.lua", "lua"),
    ("file:///src/my%20dir/util.py", "python"), ("untitled:Untitled-1.ts", "typescript"),
])
def test_extension_fallback_for_unknown_language_ids(uri, name):
    assert language_for("", uri).name == name
    assert language_for("some-unknown-id", uri).name == name


def test_unknown_languages_are_plain_text():
    assert language_for("plaintext", "file:///notes.txt") is None
    assert language_for("markdown", "file:///README.md") is None
    assert language_for("", "file:///Makefile") is None


def test_grammars_load_once():
    assert language_for("python") is language_for("", "file:///x.py")
    assert language_for("typescriptreact") is not language_for("typescript")
