"""Token healing: the model rewrites the token the cursor is in, instead of continuing after it.

A prompt ends at the cursor, which is rarely where the tokenizer would cut the finished text:
after `    ret` the prefix's last token is `ret`, which the model has only seen where a word
really ends, so it continues as if the word were over (`    ret` + `urn` is a pair of tokens
it never saw: the finished text is one token, `return`).

Healing drops the prefix's last token from the prompt and allows as the first generated token
only those whose text starts with the dropped text (`ret` -> `return`, `(` -> `()`);
the engine masks that first position (`Healing.allowed`), and the text of each row starts
with `Healing.text`, which `PromptBuilder.decode` removes, so what is shown is what follows
the cursor. A token no other token extends is left in place: there is nothing to heal.

Line breaks are left in place too, measured on held-out line holes through the server's gate:
- after a line break and indentation the cursor is where the editor indented the line, and
  healing only lets the model doubt it: 11.7% of requests answered instead of 17.7%
  (benchmarks/quality.py, quality-cpu-20261202-072503 against -025655);
- at column 0 healing a bare line break lets the model indent, but the default model's
  shown completions were right for 11.7% of requests instead of 12.8% (benchmarks/confidence.py
  at minConfidence 0.35, confidence-cpu-20261202-074231 against -074340), and HumanEval's
  column-0 holes passed no more often (1.7% against 2.0%, the same records).
So healing is for the cursor inside a line: in a word (`ret`), after an operator or a space.

It needs a tokenizer whose tokens decode one by one to the text they decode to together (the
byte-level BPE of the default model); others are not healed (`TokenHealer.works`).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass
from functools import lru_cache

from tokenizers import Tokenizer

from .builder import Prompt

# Decoded one token at a time, this must come back whole for healing to be exact.
# (ASCII: a byte-level token may hold part of a character, which decodes alone to U+FFFD.)
PROBE = "def f(x):\n    return x.ret  # a comment\n\n\tif a:\n        b = [1, 22, 333]\n"
PART_OF_A_CHARACTER = "\ufffd"
_LAST_CHAR = "\U0010ffff"


@dataclass(frozen=True)
class Healing:
    text: str  # the dropped token's text: every row's text starts with it, and it is not shown
    allowed: tuple[int, ...]  # the ids whose text starts with it: the only first tokens a row may have


def healed_text(healing: Healing | None) -> str:
    """What every generated row starts with and the editor is not shown ("" when not healed)."""
    return healing.text if healing else ""


class TokenHealer:
    """`heal(prompt)`: the prompt without its prefix's last token, and what the first generated
    token must start with. The vocabulary's texts are read once, on first use."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self._lock = threading.Lock()
        self._texts: list[str] | None = None  # by id
        self._sorted: tuple[list[str], list[int]] | None = None  # texts in order, and their ids
        self._works: bool | None = None
        self.extending = lru_cache(maxsize=256)(self._extending)

    @property
    def works(self) -> bool:
        """Whether this tokenizer's tokens decode one by one to the text they make together."""
        self._table()
        return bool(self._works)

    def heal(self, prompt: Prompt) -> tuple[Prompt, Healing] | None:
        """None when there is nothing to heal: no prefix, a special token at its end, a token
        nothing else extends, or a tokenizer healing does not work with."""
        start, end = prompt.spans.get("prefix", (0, 0))
        if end <= start or not self.works:
            return None
        text = self._texts[prompt.ids[end - 1]]
        if not text or PART_OF_A_CHARACTER in text:  # a special token, or bytes of a character
            return None
        if _starts_a_line(text):
            return None
        allowed = self.extending(text)
        if len(allowed) < 2:
            return None
        return prompt.without(end - 1), Healing(text, allowed)

    def _extending(self, text: str) -> tuple[int, ...]:
        """The ids of every token whose text starts with `text`."""
        texts, ids = self._sorted
        low = bisect_left(texts, text)
        high = bisect_left(texts, text + _LAST_CHAR, lo=low)
        return tuple(sorted(ids[low:high]))

    def _table(self) -> None:
        with self._lock:
            if self._texts is not None:
                return
            vocab = self.tokenizer.get_vocab_size()
            texts = self.tokenizer.decode_batch([[i] for i in range(vocab)], skip_special_tokens=True)
            probe = self.tokenizer.encode(PROBE, add_special_tokens=False).ids
            self._works = "".join(texts[i] for i in probe) == self.tokenizer.decode(probe) == PROBE
            order = sorted(range(vocab), key=texts.__getitem__)
            self._sorted = ([texts[i] for i in order], order)
            self._texts = texts


def _starts_a_line(text: str) -> bool:
    """Line breaks, perhaps with indentation: the cursor is at the start of a line."""
    return "\n" in text and text.strip() == ""
