"""Line holes cut the way the server cuts them, for fill-in-the-middle training.

`FimSampler` splits a window of tokens at token boundaries. The tokenizer merges a line break
with the next line's indentation (`\\n    ` is one token), so those splits never leave a
prompt that ends in a bare line break. But that is the server's prompt for a cursor at column
0 of an emptied line (HumanEval-Infilling's holes, or an editor that does not indent): the
prefix ends in `\\n`, tokenized on its own, and the middle starts with the line's indentation.
A model that never saw it reads a bare `\\n` as "the next line starts at column 0" and writes
top-level code there.

`LineHoleCutter.cut` decodes a window, takes one whole line as the middle, with the cursor at
the line's start (column 0) or after its indentation (where an editor puts it), and tokenizes
prefix, middle and suffix each on its own, as the prompt builder tokenizes its segments. The
suffix starts with the line's own break, as the text after such a cursor does.
"""

from __future__ import annotations

import random

import torch

MAX_LINE_CHARS = 160  # longer lines are rarely one completion
# Where the hole's line may start, as a share of the decoded window: the server gives the
# prefix three quarters of the prompt and the suffix the rest (`context.plan`).
FIRST_START, LAST_START = 0.6, 0.85


class LineHoleCutter:
    def __init__(self, tokenizer, separator_id: int, column_zero_share: float = 0.5):
        self.tokenizer = tokenizer
        self.separator_id = separator_id  # between files: a hole's window stays within one
        self.column_zero_share = column_zero_share

    def cut(self, window: torch.Tensor, rng: random.Random) -> tuple[list[int], list[int], list[int]] | None:
        """(prefix, middle, suffix) token ids, or None when the window holds no suitable line."""
        text = self.tokenizer.decode(self._longest_file_part(window.tolist()), skip_special_tokens=True)
        starts, position = [], 0
        for line in text.split("\n"):
            starts.append((position, line))
            position += len(line) + 1
        # Not the first or last line (the window may cut them), not blank, not too long.
        chosen = [(start, line) for start, line in starts[1:-1]
                  if line.strip() and len(line) <= MAX_LINE_CHARS
                  and FIRST_START * len(text) <= start <= LAST_START * len(text)]
        if not chosen:
            return None
        start, line = rng.choice(chosen)
        indent = len(line) - len(line.lstrip())
        cursor = start if rng.random() < self.column_zero_share else start + indent
        end = start + len(line)
        parts = (text[:cursor], text[cursor:end], text[end:])
        prefix, middle, suffix = (self.tokenizer.encode(part, add_special_tokens=False).ids for part in parts)
        return (prefix, middle, suffix) if prefix and middle else None

    def _longest_file_part(self, ids: list[int]) -> list[int]:
        parts, current = [], []
        for token in ids:
            if token == self.separator_id:
                parts.append(current)
                current = []
            else:
                current.append(token)
        parts.append(current)
        return max(parts, key=len)
