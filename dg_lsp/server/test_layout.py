"""Where a generated test goes, and the scaffold the model fills in, per language.

| language | where | scaffold |
| --- | --- | --- |
| Python | `tests/test_<module>.py` under the nearest folder holding `tests/`, else beside the module | `def test_<name>():` |
| Go | `<file>_test.go` beside the file, same package | `func Test<Name>(t *testing.T) {` |
| Rust | the same file, in its `#[cfg(test)] mod tests` (added at the end if missing) | `#[test] fn <name>_works() {` |
| JavaScript/TypeScript | `<file>.test.<ext>` beside the file | `test("<name>", () => {` |
| Lua | `spec/<module>_spec.lua` under the nearest folder holding `spec/`, else beside the module | `it("<name>", function()` |

An existing test file is read (never written) so the new test is appended to it; a new
file is created through the WorkspaceEdit, which the editor applies.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from lsprotocol import types

from ..context.document import Document
from ..errors import InputError
from .definitions import Definition, source_of

MAX_TEST_FILE_BYTES = 1_000_000


@dataclass
class TestLayout:
    target_uri: str
    create: bool  # the test file does not exist yet
    existing: str  # its current text ("" if new)
    scaffold_head: str  # written before the model's code
    scaffold_tail: str  # written after it
    context: str  # the code under test, shown to the model first
    body_indent: str
    insert_offset: int | None = None  # where in `existing` the test goes (None: the end)

    @property
    def prefix(self) -> str:
        at = len(self.existing) if self.insert_offset is None else self.insert_offset
        return self.existing[:at] + self.scaffold_head

    @property
    def suffix(self) -> str:
        at = len(self.existing) if self.insert_offset is None else self.insert_offset
        return self.scaffold_tail + self.existing[at:]

    def edit(self, body: str) -> types.WorkspaceEdit:
        body = _indent_body(body, self.body_indent)
        new_text = self.scaffold_head + body + self.scaffold_tail
        at = len(self.existing) if self.insert_offset is None else self.insert_offset
        position = _position(self.existing, at)
        change = types.TextDocumentEdit(
            text_document=types.OptionalVersionedTextDocumentIdentifier(uri=self.target_uri, version=None),
            edits=[types.TextEdit(range=types.Range(position, position), new_text=new_text)],
        )
        if self.create:
            create = types.CreateFile(uri=self.target_uri, options=types.CreateFileOptions(ignore_if_exists=True))
            return types.WorkspaceEdit(document_changes=[create, change])
        return types.WorkspaceEdit(document_changes=[change])


def for_definition(doc: Document, definition: Definition, path: Path | None) -> TestLayout:
    if path is None:
        raise InputError("tests can be generated for files on disk only (file:// documents)")
    source = source_of(doc, definition)
    name = definition.name
    context = f"{_comment(definition.language)}{path.name}\n{source}\n\n"
    lang = definition.language
    if lang == "python":
        target = _under_sibling_dir(path, "tests") / f"test_{path.stem}.py"
        return _test_file(target, f"from {path.stem} import {name}\n", f"\n\ndef test_{name}():\n    ", "\n",
                          context, "    ")
    if lang == "go":
        package = re.search(r"^package\s+(\w+)", doc.text, re.M)
        header = f'package {package.group(1) if package else "main"}\n\nimport "testing"\n'
        return _test_file(path.with_name(f"{path.stem}_test.go"), header,
                          f"\nfunc Test{name[:1].upper()}{name[1:]}(t *testing.T) {{\n\t", "\n}\n", context, "\t")
    if lang == "rust":
        tests_mod = re.search(r"#\[cfg\(test\)\]\s*mod tests\s*\{", doc.text)
        if tests_mod:
            close = doc.text.rfind("}")  # the module is conventionally last in the file
            head, tail = f"\n    #[test]\n    fn {name}_works() {{\n        ", "\n    }\n"
            return TestLayout(doc.uri, False, doc.text, head, tail, context, "        ", insert_offset=close)
        head = _separated(doc.text) + f"\n#[cfg(test)]\nmod tests {{\n    use super::*;\n\n    #[test]\n    fn {name}_works() {{\n        "
        return TestLayout(doc.uri, False, doc.text, head, "\n    }\n}\n", context, "        ")
    if lang in ("javascript", "typescript", "tsx"):
        return _test_file(path.with_name(f"{path.stem}.test{path.suffix}"), f'import {{ {name} }} from "./{path.stem}";\n',
                          f'\ntest("{name}", () => {{\n  ', "\n});\n", context, "  ")
    if lang == "lua":
        target = _under_sibling_dir(path, "spec") / f"{path.stem}_spec.lua"
        return _test_file(target, f'local {path.stem} = require("{path.stem}")\n',
                          f'\ndescribe("{name}", function()\n  it("works", function()\n    ', "\n  end)\nend)\n",
                          context, "    ")
    raise InputError(f"no test convention for {lang}")


def _test_file(target: Path, header: str, opening: str, closing: str, context: str, indent: str) -> TestLayout:
    """A test appended to its own file, `target`; `header` (imports) only when the file is new."""
    existing = _read(target)
    head = _separated(existing) + ("" if existing else header) + opening
    return TestLayout(target.as_uri(), not target.exists(), existing, head, closing, context, indent)


def _under_sibling_dir(path: Path, name: str) -> Path:
    """`name/` in the nearest ancestor (up to four levels) that has one, else the file's folder."""
    for folder in list(path.parents)[:4]:
        if (folder / name).is_dir():
            return folder / name
    return path.parent


def _read(path: Path) -> str:
    if not path.is_file():
        return ""
    if path.stat().st_size > MAX_TEST_FILE_BYTES:
        raise InputError(f"{path} is too large to add a test to")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read {path}: {err}") from None


def _separated(existing: str) -> str:
    """Make sure what is appended starts on a fresh line."""
    return "" if not existing or existing.endswith("\n") else "\n"


def _indent_body(body: str, indent: str) -> str:
    """The first line follows the scaffold's indentation; the others keep their relative indentation."""
    first, *rest = body.strip("\n").splitlines() or [""]
    rest = textwrap.dedent("\n".join(rest)).splitlines()
    return "\n".join([first.strip()] + [indent + line if line.strip() else "" for line in rest])


def _position(text: str, offset: int) -> types.Position:
    before = text[:offset]
    line = before.count("\n")
    column = before[before.rfind("\n") + 1 :]
    return types.Position(line=line, character=len(column.encode("utf-16-le")) // 2)


def _comment(language: str) -> str:
    return {"python": "# ", "lua": "-- "}.get(language, "// ")
