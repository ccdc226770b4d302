"""One completion request's plan: which span to fill, how long a canvas, and the prompt text.

The prompt is laid out so that typing at the cursor only extends what the prompt cache
holds: other files' snippets first (they do not change while this file is edited), then a
prefix whose start is stable (see `boundaries`), then the suffix.

Token budgets are turned into character budgets with a per-document characters-per-token
estimate. The tokenizer is asked only when the prefix's cut moves (rarely, see
`boundaries`); if the prefix came out too long the estimate is lowered for good, so the
cut settles instead of moving back and forth.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from . import kept
from .boundaries import prefix_start, suffix_end
from .document import Document, PositionError
from .indentation import detect_unit
from .ring import Snippet
from .span import Span, choose_span

CHARS_PER_TOKEN = 3.5  # first guess for code; corrected per document when the tokenizer disagrees
MIN_CHARS_PER_TOKEN = 1.0
LINE_CANVAS = 24
BLOCK_CANVAS = 64  # at least; more with a larger budget
MIN_CANVAS = 16
CONTEXT_SHARE = 4  # snippets of other files get at most 1/4 of the budget
PREFIX_SHARE = 0.75  # of what is left: the rest goes to the suffix
IMPORTS_SHARE = 4  # kept imports take at most 1/4 of the prefix's characters
HEADERS_ALLOWANCE = 8  # and enclosing headers are expected to fit in 1/8


@dataclass
class InfillPlan:
    prefix: str  # prompt text before the cursor (trimmed, with kept imports / enclosing headers)
    suffix: str  # prompt text after the cursor (trimmed)
    context: str  # text of snippets from other documents, placed before everything else ("" if none)
    mode: str  # "line" or "block"
    canvas_length: int  # tokens, between 16 and max_canvas
    indent: str  # indentation expected for the completion's lines (block mode: the body indentation)
    cursor_offset: int
    indent_unit: str = "    "  # the buffer's indentation step
    block_indent: str = ""  # block mode: the opener line's indentation, where the block ends
    # What an editor's auto-indent would have typed at the cursor (see `typed_indent`): the
    # prefix ends with it, and every completion starts with it.
    typed_indent: str = ""


@dataclass
class _Estimate:
    chars_per_token: float = CHARS_PER_TOKEN
    checked: tuple[int, int] | None = None  # (cut, kept characters) last confirmed to fit


_estimates: weakref.WeakKeyDictionary[Document, _Estimate] = weakref.WeakKeyDictionary()


def plan_infill(doc: Document, offset: int, count_tokens: Callable[[str], int], *, budget_tokens: int = 2048,
                max_canvas: int = 128, snippets: Sequence[Snippet] = ()) -> InfillPlan:
    if not 0 <= offset <= len(doc.text):
        raise PositionError(f"offset {offset} is outside the document (length {len(doc.text)})")
    grammar = doc.grammar
    unit = detect_unit(doc, doc.line_of(offset), grammar.default_indent if grammar else "    ")
    span = choose_span(doc, offset, unit)
    estimate = _estimates.setdefault(doc, _Estimate())

    context_tokens = budget_tokens // CONTEXT_SHARE if snippets else 0
    prefix_tokens = int((budget_tokens - context_tokens) * PREFIX_SHARE)
    suffix_tokens = budget_tokens - context_tokens - prefix_tokens
    prefix = _fit_prefix(doc, offset, prefix_tokens, count_tokens, estimate)
    end = suffix_end(doc, offset, int(suffix_tokens * estimate.chars_per_token))
    context = render_context(snippets, doc, int(context_tokens * estimate.chars_per_token))

    if span.mode == "line":
        canvas = LINE_CANVAS
    else:
        canvas = max(BLOCK_CANVAS, budget_tokens // 16)
    canvas = max(MIN_CANVAS, min(max_canvas, canvas))
    typed = typed_indent(doc, offset, span)
    return InfillPlan(
        prefix=_lf(prefix) + typed, suffix=_lf(doc.text[offset:end]), context=_lf(context), mode=span.mode,
        canvas_length=canvas, indent=span.indent, cursor_offset=offset, indent_unit=unit,
        block_indent=span.block_indent, typed_indent=typed,
    )


def typed_indent(doc: Document, offset: int, span: Span) -> str:
    """At the end of an empty line after a block opener, the part of the body's indentation the
    cursor is not at yet: what an editor's auto-indent types there. The tokenizer merges a line
    break with the indentation after it, so a prompt ending in a bare line break tells the model
    the next line starts at column 0, and it writes top-level code (HumanEval-Infilling's holes
    sit at column 0). With the indentation typed, the prompt ends as the model saw such lines
    in training."""
    line = doc.line_of(offset)
    text = doc.line_text(line)
    if span.mode != "block" or text.strip() or offset != doc.line_start(line) + len(text):
        return ""
    if len(span.indent) > len(text) and span.indent.startswith(text):
        return span.indent[len(text):]
    return ""


def _fit_prefix(doc: Document, offset: int, max_tokens: int, count_tokens: Callable[[str], int],
                estimate: _Estimate) -> str:
    """The prefix, cut to fit `max_tokens`; the tokenizer is consulted only for a new cut."""
    for _ in range(3):
        max_chars = int(max_tokens * estimate.chars_per_token)
        prefix, key = _cut_prefix(doc, offset, max_chars)
        if estimate.checked == key:
            return prefix
        tokens = count_tokens(prefix)
        if tokens <= max_tokens:
            estimate.checked = key
            return prefix
        measured = len(prefix) / max(1, tokens)
        # 10% under the measure: the prefix grows by what is typed before the next check.
        estimate.chars_per_token = max(MIN_CHARS_PER_TOKEN, min(estimate.chars_per_token, measured) * 0.9)
    return prefix  # still too long: the engine trims the rest by tokens


def _cut_prefix(doc: Document, offset: int, max_chars: int) -> tuple[str, tuple[int, int]]:
    """The prefix within `max_chars`, and what identifies its start (cut, kept length)."""
    imports = kept.imports(doc, max_chars // IMPORTS_SHARE)
    room = max_chars - sum(len(k.text) + 1 for k in imports) - max_chars // HEADERS_ALLOWANCE
    cut = prefix_start(doc, offset, max(1, room))
    if cut == 0:
        return doc.text[:offset], (0, 0)
    newline = doc.line_ending
    head = "".join(k.text + newline for k in imports if k.start < cut)
    if head:
        head += newline  # a blank line between the kept imports and what follows
    head += "".join(k.text + newline for k in kept.enclosing_headers(doc, cut))
    return head + doc.text[cut:offset], (cut, len(head))


def render_context(snippets: Sequence[Snippet], doc: Document, max_chars: int) -> str:
    """Snippets in the given order, each under a comment naming its file, within `max_chars`."""
    comment = doc.language.comment_prefix if doc.language else "# "
    parts, room = [], max_chars
    for snippet in snippets:
        header = f"{comment}path: {_display_path(snippet.uri, doc.uri)}\n"
        body = snippet.text if snippet.text.endswith("\n") else snippet.text + "\n"
        if len(header) + len(body) > room:
            body = body[: body.rfind("\n", 0, max(0, room - len(header))) + 1]
            if body.strip():
                parts.append(header + body)
            break
        parts.append(header + body)
        room -= len(header) + len(body)
    return "".join(parts)


def _display_path(uri: str, current_uri: str) -> str:
    """A snippet's path relative to the directory it shares with the current document."""
    path, here = _path(uri), _path(current_uri)
    try:
        common = os.path.commonpath([os.path.dirname(path), os.path.dirname(here)])
    except ValueError:
        return path
    return os.path.relpath(path, common) if common not in ("", "/") else path


def _path(uri: str) -> str:
    return unquote(urlparse(uri).path) if "://" in uri else uri


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n") if "\r" in text else text
