"""The languages dg-lsp understands: one module per language, each holding its `SPECS`
(a tuple of `LanguageSpec`; typescript.py holds TSX too). Adding a language is adding a
module here: the registry finds every module of the package.

    language_for(language_id, uri)   the spec for an LSP document, or None for plain text
    spec_named(name)                 the spec by dg-lsp's name ("python", "tsx")
    all_specs()                      every spec, by module name

The records a spec is made of are in `spec.py`.

Grammars themselves load on first use (`LanguageSpec.language`).
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from urllib.parse import unquote, urlparse

from .spec import DocComment, InlineTestModule, LanguageSpec, OwnTestFile

__all__ = ["DocComment", "InlineTestModule", "LanguageSpec", "OwnTestFile", "all_specs", "language_for",
           "language_modules", "spec_named"]

NOT_LANGUAGES = frozenset({"spec"})  # modules of the package that describe no language


class _Registry:
    def __init__(self, specs: tuple[LanguageSpec, ...]):
        self.specs = specs
        self.by_name = _index(((spec.name, spec) for spec in specs), "name")
        self.by_id = _index(((i, spec) for spec in specs for i in spec.language_ids), "languageId")
        self.by_extension = _index(((e, spec) for spec in specs for e in spec.extensions), "extension")


_registry: _Registry | None = None
_lock = threading.Lock()


def language_modules() -> list[str]:
    """The language modules of this package, by name."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in NOT_LANGUAGES)


def all_specs() -> tuple[LanguageSpec, ...]:
    return _specs().specs


def spec_named(name: str) -> LanguageSpec:
    return _specs().by_name[name]


def language_for(language_id: str, uri: str = "") -> LanguageSpec | None:
    """The spec for an LSP languageId, or from the file extension when the id is unknown;
    None for plain text."""
    registry = _specs()
    return registry.by_id.get(language_id) or registry.by_extension.get(_extension(uri))


def _extension(uri: str) -> str:
    path = unquote(urlparse(uri).path) if "://" in uri else uri
    name = path.rsplit("/", 1)[-1].lower()
    return name[name.rfind("."):] if "." in name else ""


def _specs() -> _Registry:
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                specs = []
                for name in language_modules():
                    module = importlib.import_module(f"{__name__}.{name}")
                    found = getattr(module, "SPECS", None)
                    if not found:
                        raise ImportError(f"{module.__name__} defines no SPECS (a tuple of LanguageSpec)")
                    specs.extend(found)
                _registry = _Registry(tuple(specs))
    return _registry


def _index(pairs, what: str) -> dict[str, LanguageSpec]:
    table: dict[str, LanguageSpec] = {}
    for key, spec in pairs:
        if key in table:
            raise ImportError(f"the language specs {table[key].name} and {spec.name} both claim the {what} {key!r}")
        table[key] = spec
    return table
