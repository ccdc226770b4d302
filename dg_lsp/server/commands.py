"""The dg.* commands (also offered as code actions), each returning a WorkspaceEdit.

- `dg.rewriteSelection {uri, range, instruction?}`: the selection is re-noised and denoised
  in place with the code around it as context; an instruction goes in as a comment.
- `dg.fillDocstring {uri, position}`: the function at the cursor gets a docstring (Python)
  or doc comment (other languages), written by infilling between the comment markers.
- `dg.generateTest {uri, position}`: a test for that function, where the language's
  conventions put it (a `tests/test_*.py` or `*_test.go` file, `#[cfg(test)] mod tests`,
  `*.test.ts`, `spec/*_spec.lua`).

Arguments come as one object (or positionally: uri, range/position, instruction). With
`"apply": true` the server also asks the editor to apply the edit (code actions do this);
the server never writes files itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types

from ..context.document import Document
from ..context.indentation import detect_unit, leading_whitespace, reindent
from ..errors import Cancelled, InputError
from . import placement
from .definitions import Definition, enclosing_definition
from .documents import DocumentStore
from .model_host import ModelHost
from .settings import Settings
from .worker import ModelWorker

REWRITE, DOCSTRING, TEST = "dg.rewriteSelection", "dg.fillDocstring", "dg.generateTest"
COMMANDS = (REWRITE, DOCSTRING, TEST)


@dataclass
class CommandArgs:
    uri: str
    range: types.Range | None
    position: types.Position | None
    instruction: str
    apply: bool


class CommandService:
    def __init__(self, documents: DocumentStore, host: ModelHost, worker: ModelWorker):
        self.documents = documents
        self.host = host
        self.worker = worker

    @staticmethod
    def wants_apply(args) -> bool:
        return bool(args and isinstance(args[0], dict) and args[0].get("apply"))

    async def run(self, name: str, raw_args: list, settings: Settings) -> types.WorkspaceEdit | None:
        args = parse_args(name, raw_args)
        doc = self.documents.get(args.uri)
        engine = self.host.engine
        if engine is None:
            raise InputError(f"the model is not ready ({self.host.state}{': ' + self.host.error if self.host.error else ''})")
        if name == REWRITE:
            job = self._rewrite_job(doc, args, engine, settings)
        else:
            offset = self.documents.offset(doc, args.position)
            definition = enclosing_definition(doc, offset)
            if definition is None:
                raise InputError("there is no function at the cursor")
            job = (self._docstring_job if name == DOCSTRING else self._test_job)(doc, definition, engine, settings)
        try:
            return await self.worker.run("command", job)
        except Cancelled:
            return None

    def code_actions(self, uri: str, selection: types.Range) -> list[types.CodeAction]:
        doc = self.documents.get(uri)
        actions = []
        if selection.start != selection.end:
            arg = {"uri": uri, "range": _range_json(selection), "apply": True}
            actions.append(_action("Rewrite selection (dg-lsp)", REWRITE, arg, types.CodeActionKind.RefactorRewrite))
        offset = self.documents.offset(doc, selection.start)
        # Asked on every selection change: never a full parse on the event loop.
        if (definition := enclosing_definition(doc, offset, full_parse=False)) is not None:
            arg = {"uri": uri, "position": {"line": selection.start.line, "character": selection.start.character},
                   "apply": True}
            if definition.docstring_offset is not None:
                actions.append(_action("Write docstring (dg-lsp)", DOCSTRING, arg, types.CodeActionKind.RefactorRewrite))
            actions.append(_action("Generate test (dg-lsp)", TEST, arg, types.CodeActionKind.Source))
        return actions

    # -- the three jobs: each returns a function the model thread runs ----------------------

    def _rewrite_job(self, doc: Document, args: CommandArgs, engine, settings: Settings):
        start = self.documents.offset(doc, args.range.start)
        end = self.documents.offset(doc, args.range.end)
        if end <= start:
            raise InputError("select the code to rewrite")
        prefix, selection, suffix = doc.text[:start], doc.text[start:end], doc.text[end:]
        first_line = doc.line_of(start)
        lead = doc.text[doc.line_start(first_line) : start]  # what the selection's first line keeps
        unit = detect_unit(doc, first_line, doc.grammar.default_indent if doc.grammar else "    ")
        if args.instruction:
            prefix += _instruction_comment(doc, prefix, args.instruction)
        edit_range = args.range

        def job(is_cancelled):
            completion = engine.rewrite(prefix, selection, suffix, key=doc.uri, max_steps=settings.invokedSteps,
                                        seed=settings.seed, cancel=is_cancelled)
            return _edit(doc.uri, edit_range, fit_rewrite(selection, lead, completion.text, unit))

        return job

    def _docstring_job(self, doc: Document, definition: Definition, engine, settings: Settings):
        style = definition.docstring_style()
        insert_at = definition.docstring_offset
        if insert_at is None:
            raise InputError(f"{definition.name} has no body on lines of its own to put a docstring in "
                             "(is the indentation after its `def` line broken?)")
        position = self.documents.position(doc, insert_at)
        prefix = doc.text[:insert_at] + style.opening
        suffix = style.closing + doc.text[insert_at:]

        def job(is_cancelled):
            completion = engine.infill(prefix, suffix, key=doc.uri, canvas_length=min(settings.maxCanvas, 96),
                                       max_steps=settings.invokedSteps, seed=settings.seed, cancel=is_cancelled)
            text = style.render(completion.text)
            return _edit(doc.uri, types.Range(position, position), text)

        return job

    def _test_job(self, doc: Document, definition: Definition, engine, settings: Settings):
        path = uri_to_path(doc.uri)
        pending = placement.request_for(doc, definition, path)

        def job(is_cancelled):
            layout = pending.place()  # reads the existing test file: here, off the event loop
            completion = engine.infill(layout.prefix, layout.suffix, context=layout.context, key=doc.uri,
                                       canvas_length=settings.maxCanvas, max_steps=settings.invokedSteps,
                                       seed=settings.seed, cancel=is_cancelled)
            return layout.edit(completion.text)

        return job


def fit_rewrite(selection: str, lead: str, text: str, unit: str) -> str:
    """The rewritten text, shaped like the selection it replaces: when the selection starts
    in its line's indentation, the first line gets the selection's indentation back (the
    model may drop it) and the other lines keep their depth relative to it, in the buffer's
    unit; a selection of whole lines stays whole lines."""
    if text.strip() and not lead.strip():
        first = selection.split("\n", 1)[0]
        text = reindent(text, lead, lead + leading_whitespace(first), unit)
    if selection.endswith("\n") and not text.endswith("\n"):
        text += "\n"
    return text


def parse_args(name: str, raw: list) -> CommandArgs:
    if not raw:
        raise InputError(f"{name} needs arguments: {{uri, {'range' if name == REWRITE else 'position'}}}")
    if isinstance(raw[0], dict):
        obj = raw[0]
    else:
        keys = ("uri", "range" if name == REWRITE else "position", "instruction")
        obj = dict(zip(keys, raw))
    uri = obj.get("uri") or (obj.get("textDocument") or {}).get("uri")
    if not isinstance(uri, str):
        raise InputError(f"{name}: the argument needs a document uri")
    rng = _parse_range(obj.get("range")) if name == REWRITE else None
    pos = None
    if name != REWRITE:
        pos = _parse_position(obj.get("position") or (obj.get("range") or {}).get("start"))
    instruction = obj.get("instruction") or ""
    if not isinstance(instruction, str):
        raise InputError(f"{name}: instruction must be a string")
    return CommandArgs(uri, rng, pos, instruction.strip(), bool(obj.get("apply")))


def _parse_position(raw) -> types.Position:
    if not (isinstance(raw, dict) and isinstance(raw.get("line"), int) and isinstance(raw.get("character"), int)):
        raise InputError("expected a position {line, character}")
    return types.Position(line=raw["line"], character=raw["character"])


def _parse_range(raw) -> types.Range:
    if not isinstance(raw, dict):
        raise InputError("expected a range {start, end}")
    return types.Range(start=_parse_position(raw.get("start")), end=_parse_position(raw.get("end")))


def _range_json(r: types.Range) -> dict:
    return {"start": {"line": r.start.line, "character": r.start.character},
            "end": {"line": r.end.line, "character": r.end.character}}


def _action(title: str, command: str, arg: dict, kind) -> types.CodeAction:
    return types.CodeAction(title=title, kind=kind, command=types.Command(title=title, command=command, arguments=[arg]))


def _edit(uri: str, rng: types.Range, text: str) -> types.WorkspaceEdit:
    return types.WorkspaceEdit(changes={uri: [types.TextEdit(range=rng, new_text=text)]})


def _instruction_comment(doc: Document, prefix: str, instruction: str) -> str:
    """The instruction as a comment on its own line, indented like the selection."""
    line_start = prefix.rfind("\n") + 1
    indent = prefix[line_start:][: len(prefix[line_start:]) - len(prefix[line_start:].lstrip())]
    comment = doc.grammar.comment_prefix if doc.grammar is not None else "# "
    if prefix[line_start:].strip():  # the selection starts mid-line: put the comment above that line
        return ""
    return f"{comment}{instruction}\n{indent}"


def uri_to_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None
