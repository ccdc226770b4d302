"""Where a generated test goes, and the scaffold the model fills in, by the language's test
convention (`LanguageSpec.tests`):

| language | where | scaffold |
| --- | --- | --- |
| Python | `tests/test_<module>.py` under the nearest folder holding `tests/`, else beside the module | `def test_<name>():` |
| Go | `<file>_test.go` beside the file, same package | `func Test<Name>(t *testing.T) {` |
| Rust | the same file, in its `#[cfg(test)] mod tests` (added at the end if missing) | `#[test] fn <name>_works() {` |
| JavaScript/TypeScript | `<file>.test.<ext>` beside the file | `test("<name>", () => {` |
| Lua | `spec/<module>_spec.lua` under the nearest folder holding `spec/`, else beside the module | `it("<name>", function()` |

Two steps, so that the server's event loop never touches the disk: `request_for` copies
what it needs from the document (on the loop, while the document is current), and
`PendingTest.place` reads the existing test file (on the model thread) so the new test is
appended to it. A file is never written: a new one is created through the WorkspaceEdit,
which the editor applies.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from string import Template

from lsprotocol import types

from ..context.document import Document
from ..errors import InputError
from ..languages import InlineTestModule, LanguageSpec, OwnTestFile
from .definitions import Definition, source_of

MAX_TEST_FILE_BYTES = 1_000_000
SIBLING_LEVELS = 4  # how far up a `tests/` (or `spec/`) folder is looked for


@dataclass
class Placement:
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
        return self.existing[: self._at] + self.scaffold_head

    @property
    def suffix(self) -> str:
        return self.scaffold_tail + self.existing[self._at :]

    @property
    def _at(self) -> int:
        return len(self.existing) if self.insert_offset is None else self.insert_offset

    def edit(self, body: str) -> types.WorkspaceEdit:
        body = _indent_body(body, self.body_indent)
        new_text = self.scaffold_head + body + self.scaffold_tail
        position = _position(self.existing, self._at)
        change = types.TextDocumentEdit(
            text_document=types.OptionalVersionedTextDocumentIdentifier(uri=self.target_uri, version=None),
            edits=[types.TextEdit(range=types.Range(position, position), new_text=new_text)],
        )
        if self.create:
            create = types.CreateFile(uri=self.target_uri, options=types.CreateFileOptions(ignore_if_exists=True))
            return types.WorkspaceEdit(document_changes=[create, change])
        return types.WorkspaceEdit(document_changes=[change])


@dataclass(frozen=True)
class PendingTest:
    """A test to place, with everything taken from the document already (it may change
    while the request waits for the model thread)."""

    spec: LanguageSpec
    uri: str
    path: Path
    text: str  # the document's text
    values: dict[str, str]  # the convention's template values: name, Name, stem, suffix, ...
    context: str

    def place(self) -> Placement:
        """The placement; reads the existing test file, if any (`InputError` if it cannot)."""
        convention = self.spec.tests
        if isinstance(convention, InlineTestModule):
            return self._in_module(convention)
        return self._in_file(convention)

    def _in_file(self, convention: OwnTestFile) -> Placement:
        folder = _sibling_dir(self.path, convention.folder) if convention.folder else self.path.parent
        target = folder / self._fill(convention.path)
        existing = _read(target)
        head = _separated(existing) + ("" if existing else self._fill(convention.header)) + self._fill(convention.opening)
        return Placement(target.as_uri(), not target.exists(), existing, head, self._fill(convention.closing),
                         self.context, convention.body_indent)

    def _in_module(self, convention: InlineTestModule) -> Placement:
        opening, closing = self._fill(convention.opening), self._fill(convention.closing)
        if re.search(convention.module_start, self.text):
            close = self.text.rfind(convention.module_end)
            return Placement(self.uri, False, self.text, opening, closing, self.context, convention.body_indent,
                             insert_offset=close)
        head = _separated(self.text) + self._fill(convention.module_opening) + opening
        return Placement(self.uri, False, self.text, head, closing + self._fill(convention.module_closing),
                         self.context, convention.body_indent)

    def _fill(self, template: str) -> str:
        return Template(template).substitute(self.values)


def request_for(doc: Document, definition: Definition, path: Path | None) -> PendingTest:
    """What `place` needs, copied from the document; reads no file."""
    if path is None:
        raise InputError("tests can be generated for files on disk only (file:// documents)")
    spec, name = definition.spec, definition.name
    values = {"name": name, "Name": name[:1].upper() + name[1:], "stem": path.stem, "suffix": path.suffix}
    if isinstance(spec.tests, OwnTestFile):
        for key, (pattern, default) in spec.tests.from_source.items():
            found = re.search(pattern, doc.text, re.M)
            values[key] = found.group(1) if found else default
    context = f"{spec.comment_prefix}{path.name}\n{source_of(doc, definition)}\n\n"
    return PendingTest(spec, doc.uri, path, doc.text, values, context)


def for_definition(doc: Document, definition: Definition, path: Path | None) -> Placement:
    """Both steps at once (reads the test file here)."""
    return request_for(doc, definition, path).place()


def _sibling_dir(path: Path, name: str) -> Path:
    """`name/` in the nearest ancestor (up to SIBLING_LEVELS) that has one, else the file's folder."""
    for folder in list(path.parents)[:SIBLING_LEVELS]:
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
