"""Prompts as text for a remote server, cut to the token budget here, before they are sent.

The segments and their shares are the local builder's (`dg_lsp.prompt.builder`): snippets from
other files at most a quarter of the budget, the suffix at most a quarter of what is left, the
prefix the rest, each cut at a line break where one is in reach. Tokens are counted with the
model's tokenizer when `dgLsp.remote.tokenizer` names a local copy of it; otherwise estimated at
`CHARS_PER_TOKEN` characters a token (code averages 3 to 4 with the common code tokenizers, so
3 keeps most prompts within a server's context window).

A generated row is a list of text pieces (the server's tokens when it reports them), so the
confidence gate and the server's shared code paths treat it like a row of token ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..prompt.builder import CONTEXT_SHARE, MAX_CHARS_PER_TOKEN, SUFFIX_SHARE, _head_chars, _tail_chars, _text_of
from ..prompt.tokens import Encoded, SegmentTokenizer, keep_end, keep_start
from .templates import Template

CHARS_PER_TOKEN = 3
# An estimated token: up to CHARS_PER_TOKEN characters of one line (a line break ends its last token).
_ESTIMATED_TOKEN = re.compile(r"[^\n]{1,%d}\n?|\n" % CHARS_PER_TOKEN)


@dataclass(frozen=True)
class TextPrompt:
    prefix: str
    suffix: str
    context: str
    tokens: int  # counted (or estimated) with the template's fixed text
    cache_key: str = ""  # the document, as for the local engine's prompts
    selection: str | None = None  # a rewrite's current code, for instruction prompts

    def __len__(self) -> int:
        return self.tokens


class _Estimate:
    """What `tokenizers.Encoding` offers the segment memo (ids, offsets), from character counts."""

    def __init__(self, text: str):
        self.offsets = [m.span() for m in _ESTIMATED_TOKEN.finditer(text)]
        self.ids = [0] * len(self.offsets)


class EstimatingTokenizer:
    """Stands in for a tokenizer when none is configured: counts are estimates."""

    def encode(self, text: str, add_special_tokens: bool = False) -> _Estimate:
        return _Estimate(text)


class TextPromptBuilder:
    def __init__(self, template: Template | None, budget_tokens: int, tokenizer=None):
        self.template = template
        self.budget = budget_tokens
        self.estimated = tokenizer is None
        self.tokens = SegmentTokenizer(tokenizer if tokenizer is not None else EstimatingTokenizer())
        # The template's own text (markers, the instruction) is part of every prompt's count.
        fixed = template.render("", "", "") if template is not None else ""
        self.fixed_tokens = len(self.tokens.encode(fixed))

    def build(self, prefix: str, suffix: str = "", context: str = "", key: str = "",
              selection: str | None = None) -> TextPrompt:
        max_chars = self.budget * MAX_CHARS_PER_TOKEN
        room = max(1, self.budget - self.fixed_tokens)
        if selection is not None:
            room = max(1, room - len(self.tokens.encode(selection, stable=False)))
        context_enc = self.tokens.encode(_head_chars(context, max_chars))
        context_kept = keep_start(context_enc, room // CONTEXT_SHARE)
        room -= context_kept
        suffix_enc = self.tokens.encode(_head_chars(suffix, max_chars))
        suffix_kept = keep_start(suffix_enc, room // SUFFIX_SHARE)
        room -= suffix_kept
        prefix_enc = self._prefix(prefix)
        first = keep_end(prefix_enc, room)
        prefix_text = _tail_text(prefix_enc, first)
        tokens = self.fixed_tokens + context_kept + suffix_kept + len(prefix_enc) - first
        return TextPrompt(prefix_text, _text_of(suffix_enc, suffix_kept), _text_of(context_enc, context_kept),
                          tokens, key, selection)

    def count(self, prefix: str) -> int:
        """Tokens in a prefix (memoized: building the prompt from it then counts nothing new)."""
        return len(self._prefix(prefix))

    def count_text(self, text: str) -> int:
        return len(self.tokens.encode(text, stable=False))

    def _prefix(self, prefix: str) -> Encoded:
        return self.tokens.encode(_tail_chars(prefix, self.budget * MAX_CHARS_PER_TOKEN), stable=False)

    @staticmethod
    def decode(pieces, healed: str = "") -> str:
        """The pieces' text (`healed` is always empty here: the remote engine never heals)."""
        return "".join(pieces)


def _tail_text(encoded: Encoded, first: int) -> str:
    """The text from token `first` to the end."""
    if first <= 0:
        return encoded.text
    if first >= len(encoded):
        return ""
    return encoded.text[encoded.offsets[first][0]:]
