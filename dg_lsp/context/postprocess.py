"""Turn the model's raw completion into the text to insert at the cursor, or None.

In order: the span's limit (line mode: the first line; block mode: re-indent to the
buffer, then stop where the block ends), no repetition of what follows the cursor nor of
the completion's own previous line, no trailing blank lines, and finally the syntax guard.

A line completion that starts with more indentation, where the cursor is already after the
line's indentation, is dropped: the editor (or the user) indented the line, and the model's
extra blanks are a guess at layout, not code. Measured on held-out line holes through the
server's gate (benchmarks/confidence.py), such completions were never right.

A completion that is only a comment marker (`#`, `//`, `---`: a comment with no words yet) is
dropped as well: it tells the user nothing they do not know, and the gate let such one-token
guesses through often (on held-out code lines, 18 of the 73 wrong completions shown by the
prompt-512 model were a lone `#` or `//`).
"""

from __future__ import annotations

from .block_end import cut_at_block_end
from .document import Document
from .indentation import reindent
from .overlap import cut_at_self_repetition, drop_repeated_lines, strip_line_overlap
from .plan import InfillPlan
from .syntax_guard import keep_parsable

FOLLOWING_LINES = 8  # lines after the cursor compared with the completion's last lines


def clean_completion(doc: Document, plan: InfillPlan, text: str) -> str | None:
    text = text.replace("\r\n", "\n")
    if not text.strip():
        return None
    offset = plan.cursor_offset
    line = doc.line_of(offset)
    before = doc.text[doc.line_start(line) : offset]
    suffix_lines = plan.suffix.split("\n")
    rest = suffix_lines[0]
    following = [s.strip() for s in suffix_lines[1 : 1 + 4 * FOLLOWING_LINES] if s.strip()][:FOLLOWING_LINES]
    blank_before = not before.strip()

    if plan.mode == "line":
        text = text.split("\n", 1)[0]
        if before and blank_before and text[:1].isspace():
            return None
        text = strip_line_overlap(before, text, rest)
        if blank_before and following and text.strip() == following[0]:
            return None
        if not rest.strip():
            text = text.rstrip()
    else:
        text = _drop_leading_blank_lines(text)
        text = reindent(text, before, plan.indent, plan.indent_unit)
        grammar = doc.grammar  # block mode is only planned with one
        style, lifetimes = (grammar.style, grammar.has_lifetimes) if grammar else ("indent", False)
        text = cut_at_block_end(text, style, plan.block_indent, following, lifetimes)
        text = drop_repeated_lines(text, following)
        text = cut_at_self_repetition(text).rstrip()
    if not text.strip() or _is_wordless_comment(doc, text):
        return None

    newline = doc.line_ending
    if newline != "\n":
        text = text.replace("\n", newline)
    return keep_parsable(doc, offset, text)


def _is_wordless_comment(doc: Document, text: str) -> bool:
    """`#`, `// `, `///`, `--`: the language's comment marker and nothing that says anything."""
    grammar = doc.grammar
    stripped = text.strip()
    return (grammar is not None and stripped.startswith(grammar.comment_prefix.strip())
            and not any(c.isalnum() for c in stripped))


def _drop_leading_blank_lines(text: str) -> str:
    lines = text.split("\n")
    while len(lines) > 1 and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines)
