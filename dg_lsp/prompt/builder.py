"""One prompt builder: the plan's segments in, token ids out, under one token budget.

Every prompt dg-lsp sends to a model is made here, for completions, the `dg.*` commands and
the evaluation alike. The segments are the snippets from other files (`context`), the
`prefix` before the cursor and the `suffix` after it; each is tokenized once (the stable
ones are memoized by text, see `tokens`), cut to its share of the budget, and laid out so
that typing at the cursor only appends to the prompt, which keeps the prompt cache warm:

- FIM, SPM order: `[bos] context <pre> <suf> suffix <mid> prefix`;
- FIM, PSM order: `[bos] context <pre> prefix <suf> suffix <mid>` (the model's own order;
  typing re-encodes the suffix);
- instruction (models without FIM tokens): the context, the suffix and the instruction in the
  user's turn, then the prefix as the start of the model's reply, which it continues.

Budget: the context gets at most a quarter, the suffix at most a quarter of what is left, and
the prefix the rest; each share depends only on its own segment and those before it, so a
growing prefix never moves the cut of the segments cached ahead of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .decode import decode
from .format import PromptFormat, render_chat
from .tokens import Encoded, SegmentTokenizer, keep_end, keep_start

CONTEXT_SHARE = 4  # snippets get at most 1/4 of the budget
SUFFIX_SHARE = 4  # the suffix at most 1/4 of what the snippets leave
MAX_CHARS_PER_TOKEN = 8  # text beyond budget * this is cut before tokenizing: no huge file is tokenized whole

INSTRUCTION = (
    "Your reply starts with the code before the gap. Continue it from exactly where it stops, up to "
    "where the code after the gap begins. Write only code, without explanations or code fences."
)


@dataclass(frozen=True)
class Prompt:
    ids: tuple[int, ...]
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)  # segment -> [start, end) token positions
    cache_key: str = ""  # which prompt-cache entry it belongs to (the document)

    def __len__(self) -> int:
        return len(self.ids)

    def segment(self, name: str) -> tuple[int, ...]:
        start, end = self.spans.get(name, (0, 0))
        return self.ids[start:end]

    def without(self, position: int) -> Prompt:
        """The prompt with the token at `position` dropped (token healing, see `healing`)."""
        spans = {name: (start - (start > position), end - (end > position)) for name, (start, end) in self.spans.items()}
        return Prompt(self.ids[:position] + self.ids[position + 1 :], spans, self.cache_key)


class PromptBuilder:
    def __init__(self, fmt: PromptFormat, budget_tokens: int):
        self.format = fmt
        self.budget = budget_tokens
        self.tokens = SegmentTokenizer(fmt.tokenizer)

    def build(self, prefix: str, suffix: str = "", context: str = "", key: str = "") -> Prompt:
        fmt = self.format
        max_chars = self.budget * MAX_CHARS_PER_TOKEN
        context_enc = self.tokens.encode(_head_chars(context, max_chars))
        suffix_enc = self.tokens.encode(_head_chars(suffix, max_chars))
        prefix_enc = self._prefix(prefix)
        if fmt.kind == "instruction":
            return self._instruction(prefix_enc, suffix_enc, context_enc, key)

        pre, suf, mid = fmt.fim_ids
        bos = [fmt.bos_id] if fmt.bos_id is not None else []
        room = max(1, self.budget - len(bos) - 3)
        context_ids = context_enc.ids[: keep_start(context_enc, room // CONTEXT_SHARE)]
        room -= len(context_ids)
        suffix_ids = suffix_enc.ids[: keep_start(suffix_enc, room // SUFFIX_SHARE)]
        room -= len(suffix_ids)
        prefix_ids = prefix_enc.ids[keep_end(prefix_enc, room) :]
        if fmt.fim_order == "spm":
            parts = [("bos", bos), ("context", context_ids), ("markers", [pre, suf]), ("suffix", suffix_ids),
                     ("middle", [mid]), ("prefix", prefix_ids)]
        else:
            parts = [("bos", bos), ("context", context_ids), ("markers", [pre]), ("prefix", prefix_ids),
                     ("middle", [suf]), ("suffix", suffix_ids), ("end", [mid])]
        return _assemble(parts, key)

    def _instruction(self, prefix_enc: Encoded, suffix_enc: Encoded, context_enc: Encoded, key: str) -> Prompt:
        """The user's turn holds what does not change while typing; the reply starts with the prefix."""
        room = max(1, self.budget - len(self._instruction_head("", "")))  # the fixed text comes first
        context_tokens = keep_start(context_enc, room // CONTEXT_SHARE)
        room -= context_tokens
        suffix_tokens = keep_start(suffix_enc, room // SUFFIX_SHARE)
        head = self._instruction_head(_text_of(context_enc, context_tokens), _text_of(suffix_enc, suffix_tokens))
        prefix_ids = prefix_enc.ids[keep_end(prefix_enc, max(1, self.budget - len(head))) :]
        return _assemble([("instruction", head), ("prefix", prefix_ids)], key)

    def _instruction_head(self, context: str, suffix: str) -> tuple[int, ...]:
        fmt = self.format
        message = f"Code from other open files:\n{context}\n\n" if context else ""
        message += f"The code after the gap:\n{suffix}\n\n{INSTRUCTION}"
        if fmt.chat_template:
            return self.tokens.encode(render_chat(fmt.chat_template, message, fmt.bos_token)).ids
        bos = (fmt.bos_id,) if fmt.bos_id is not None else ()
        return bos + self.tokens.encode(message + "\n\nThe code before the gap:\n").ids

    def count(self, prefix: str) -> int:
        """Tokens in a prefix (at most what the builder would tokenize of it); building a prompt
        from the same text then tokenizes nothing."""
        return len(self._prefix(prefix))

    def _prefix(self, prefix: str) -> Encoded:
        return self.tokens.encode(_tail_chars(prefix, self.budget * MAX_CHARS_PER_TOKEN), stable=False)

    def encode(self, text: str) -> list[int]:
        """Tokens of a text that is not a prompt segment (a rewrite's selection)."""
        return list(self.tokens.encode(text, stable=False).ids)

    def decode(self, ids, healed: str = "") -> str:
        """The text of `ids`; with `healed` (the text of a healed token, `healing.Healing.text`),
        the text after it: what follows the cursor."""
        text = decode(self.format.tokenizer, ids)
        if not healed:
            return text
        return text[len(healed) :] if text.startswith(healed) else ""


def _assemble(parts, key: str) -> Prompt:
    ids: list[int] = []
    spans: dict[str, tuple[int, int]] = {}
    for name, part in parts:
        spans[name] = (len(ids), len(ids) + len(part))
        ids.extend(part)
    return Prompt(tuple(ids), spans, key)


def _text_of(encoded: Encoded, tokens: int) -> str:
    """The text of the first `tokens` tokens."""
    if tokens >= len(encoded):
        return encoded.text
    return encoded.text[: encoded.offsets[tokens - 1][1]] if tokens > 0 else ""


def _head_chars(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: text.rfind("\n", 0, max_chars) + 1 or max_chars]


def _tail_chars(text: str, max_chars: int, step: int = 512) -> str:
    """The end of `text`, cut in steps of `step` characters and then after a line break, so the
    cut does not move while typing."""
    if len(text) <= max_chars:
        return text
    start = -(-(len(text) - max_chars) // step) * step
    newline = text.find("\n", start)
    return text[newline + 1 :] if 0 <= newline < len(text) - 1 else text[start:]
