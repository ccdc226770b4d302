"""Prompts for the Dream family: in place, `[bos] context prefix <gap> suffix [eos]`.

These models have no fill-in-the-middle tokens: the gap is a run of mask tokens between the
prefix and the suffix, and the engine inserts it at `Prompt.spans["gap"]` (its length is only
known when generating). Snippets from other files go before the prefix. The budget is shared
as the FIM builder shares it (`dg_lsp.prompt.builder`): the snippets at most a quarter, the
suffix at most a quarter of what is left, the prefix the rest, each cut at a line break where
one is in reach; tokenization, memoization, `count`, `encode` and `decode` are the builder's.
"""

from __future__ import annotations

from tokenizers import Tokenizer

from ..prompt import Prompt, PromptBuilder, PromptFormat
from ..prompt.builder import CONTEXT_SHARE, MAX_CHARS_PER_TOKEN, SUFFIX_SHARE, _assemble, _head_chars
from ..prompt.format import STOP_TOKENS
from ..prompt.tokens import keep_end, keep_start


def dream_prompt_format(tokenizer: Tokenizer, bos_id: int | None, eos_id: int | None) -> PromptFormat:
    """The stop tokens are the config's EOS and the tokenizer's usual end-of-text tokens."""
    stops = {eos_id} if eos_id is not None else set()
    stops |= {i for token in STOP_TOKENS if (i := tokenizer.token_to_id(token)) is not None}
    return PromptFormat(tokenizer, "in_place", tuple(sorted(stops)), bos_id)


class DreamPromptBuilder(PromptBuilder):
    def __init__(self, fmt: PromptFormat, budget_tokens: int, eos_id: int | None):
        super().__init__(fmt, budget_tokens)
        self.eos_id = eos_id

    def build(self, prefix: str, suffix: str = "", context: str = "", key: str = "") -> Prompt:
        max_chars = self.budget * MAX_CHARS_PER_TOKEN
        context_enc = self.tokens.encode(_head_chars(context, max_chars))
        suffix_enc = self.tokens.encode(_head_chars(suffix, max_chars))
        prefix_enc = self._prefix(prefix)
        bos = [self.format.bos_id] if self.format.bos_id is not None else []
        eos = [self.eos_id] if self.eos_id is not None else []
        room = max(1, self.budget - len(bos) - len(eos))
        context_ids = context_enc.ids[: keep_start(context_enc, room // CONTEXT_SHARE)]
        room -= len(context_ids)
        suffix_ids = suffix_enc.ids[: keep_start(suffix_enc, room // SUFFIX_SHARE)]
        room -= len(suffix_ids)
        prefix_ids = prefix_enc.ids[keep_end(prefix_enc, room) :]
        return _assemble([("bos", bos), ("context", context_ids), ("prefix", prefix_ids), ("gap", []),
                          ("suffix", suffix_ids), ("eos", eos)], key)


def split_at_gap(prompt: Prompt) -> tuple[list[int], list[int]]:
    """(everything before the gap, everything after it) as token ids."""
    if "gap" not in prompt.spans:
        raise ValueError("this prompt was not built for in-place infilling (it has no gap)")
    at = prompt.spans["gap"][0]
    return list(prompt.ids[:at]), list(prompt.ids[at:])
