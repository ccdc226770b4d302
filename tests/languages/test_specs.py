"""Adding a language is one file: the registry finds every module of dg_lsp.languages, each
spec fills in everything the generic code reads, and dg_lsp/server names no node type."""

import ast
import importlib
import re
from dataclasses import MISSING, fields
from pathlib import Path
from string import Template

import pytest

import dg_lsp.languages as languages
from dg_lsp.context.document import Document
from dg_lsp.languages import InlineTestModule, LanguageSpec, OwnTestFile, all_specs, language_for, spec_named
from dg_lsp.languages.spec import STYLES
from dg_lsp.server.definitions import enclosing_definition

PACKAGE = Path(languages.__file__).parent
SERVER = PACKAGE.parent / "server"
SPECS = all_specs()


def test_the_registry_finds_every_language_module():
    on_disk = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "spec"}
    assert set(languages.language_modules()) == on_disk
    for name in on_disk:
        module = importlib.import_module(f"dg_lsp.languages.{name}")
        assert module.SPECS and all(spec in SPECS for spec in module.SPECS), name
    assert {s.name for s in SPECS} >= {"python", "javascript", "typescript", "tsx", "rust", "go", "lua"}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_required_field_is_filled(spec):
    for f in fields(LanguageSpec):
        value = getattr(spec, f.name)
        if f.default is MISSING and f.default_factory is MISSING and not isinstance(value, bool):
            assert value, f"{spec.name}: {f.name} is empty"
    assert spec.style in STYLES
    assert spec.comment_prefix.endswith(" ") and not spec.default_indent.strip()
    assert all(e.startswith(".") and e == e.lower() for e in spec.extensions)
    assert isinstance(spec.opener_line, re.Pattern)
    for opening, closing in spec.guard_wrappers.values():
        assert opening.endswith("\n") and closing.startswith("\n")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_node_type_exists_in_the_grammar(spec):
    # A misspelt node type makes the generic code silently do nothing for that language.
    grammar = spec.language
    kinds = {grammar.node_kind_for_id(i) for i in range(grammar.node_kind_count)}
    assert spec.node_types() <= kinds, spec.node_types() - kinds
    assert spec.function_types <= spec.definition_types  # a function's header is kept like any definition's


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_template_fills_in(spec):
    comment = spec.doc_comment
    for part in (comment.opening, comment.closing, comment.line_prefix):
        Template(part).substitute(indent="  ")  # a stray `$word` raises here
    assert comment.end_marker
    tests = spec.tests
    values = {"name": "add", "Name": "Add", "stem": "calc", "suffix": ".x"}
    if isinstance(tests, OwnTestFile):
        for key, (pattern, default) in tests.from_source.items():
            assert re.compile(pattern).groups == 1 and default
            values[key] = default
        parts = (tests.path, tests.header, tests.opening, tests.closing)
        assert "calc" in Template(tests.path).substitute(values)
    else:
        assert isinstance(tests, InlineTestModule)
        re.compile(tests.module_start)
        parts = (tests.module_opening, tests.module_closing, tests.opening, tests.closing)
    filled = [Template(part).substitute(values) for part in parts]
    assert "add" in "".join(filled) or "Add" in "".join(filled)
    assert not tests.body_indent.strip() and tests.body_indent


def test_a_new_module_is_a_new_language(tmp_path, monkeypatch):
    """One file in the package: its languageIds, extensions and rules take effect."""
    (tmp_path / "toy.py").write_text(
        "from dataclasses import replace\n"
        "from .python import SPECS as _PYTHON\n"
        "SPECS = (replace(_PYTHON[0], name='toy', language_ids=('toy',), extensions=('.toy',),\n"
        "                 comment_prefix=';; '),)\n")
    monkeypatch.setattr(languages, "__path__", [*languages.__path__, str(tmp_path)])
    monkeypatch.setattr(languages, "_registry", None)
    assert "toy" in languages.language_modules()
    toy = language_for("", "file:///src/game.toy")
    assert toy is language_for("toy") is spec_named("toy") and toy.comment_prefix == ";; "
    doc = Document("file:///src/game.toy", "toy", "def play(x):\n    return x\n")
    definition = enclosing_definition(doc, 20)
    assert definition is not None and definition.spec is toy and definition.name == "play"


def test_two_specs_may_not_claim_one_extension(tmp_path, monkeypatch):
    (tmp_path / "clash.py").write_text(
        "from dataclasses import replace\n"
        "from .python import SPECS as _PYTHON\n"
        "SPECS = (replace(_PYTHON[0], name='clash', language_ids=('clash',)),)\n")
    monkeypatch.setattr(languages, "__path__", [*languages.__path__, str(tmp_path)])
    monkeypatch.setattr(languages, "_registry", None)
    with pytest.raises(ImportError, match="'.py'"):
        all_specs()


def _string_constants(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_the_server_names_no_node_type():
    # Named node types ("function_definition", "block"), not tokens such as "{" or ":".
    node_types = {t for spec in SPECS for t in spec.node_types() if re.fullmatch(r"[a-z][a-z_]*", t)}
    assert "function_definition" in node_types
    for path in sorted(SERVER.glob("*.py")):
        named = _string_constants(path) & node_types
        assert not named, f"{path.name} names node types {sorted(named)}: put them in a language spec"


def test_the_check_above_would_catch_one(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('KINDS = ("function_item",)\n')
    assert "function_item" in _string_constants(sample)


def test_typescript_extends_javascript():
    javascript, typescript, tsx = spec_named("javascript"), spec_named("typescript"), spec_named("tsx")
    assert javascript.definition_types < typescript.definition_types == tsx.definition_types
    assert typescript.guard_wrappers == javascript.guard_wrappers
    assert tsx.language is not typescript.language
