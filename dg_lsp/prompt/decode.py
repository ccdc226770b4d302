"""Token rows back to text: the inverse of the builder, beside it."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer


def decode(tokenizer: Tokenizer, ids: Iterable[int]) -> str:
    """Special tokens (FIM markers, stop tokens) never reach the buffer."""
    return tokenizer.decode(list(ids), skip_special_tokens=True)
