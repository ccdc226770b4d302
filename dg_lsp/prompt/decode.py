"""Token rows back to text: the inverse of the builder, beside it."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer


def decode(tokenizer: Tokenizer, ids: Iterable[int]) -> str:
    """Special tokens (FIM markers, stop tokens) never reach the buffer."""
    return tokenizer.decode(list(ids), skip_special_tokens=True)


def line_break_ids(tokenizer: Tokenizer) -> frozenset[int]:
    """The tokens whose text holds a line break (the tokenizer merges one with the indentation
    after it): where a one-line completion ends, and where training cuts its line holes."""
    return frozenset(i for i in range(tokenizer.get_vocab_size()) if "\n" in tokenizer.decode([i]))
