"""Keep the encoder's KV cache of each document's prompt and re-encode only what changed.

Entries are keyed by the prompt's cache key (its document). A prompt reuses its own entry up
to the longest common prefix (valid, because the encoder is causal) and encodes only the
rest, so typing at the end of a prompt encodes a handful of tokens per keystroke, and two
documents edited in turn keep both caches. A document seen for the first time starts from a
copy of another entry only when they share a real prefix (`min_shared` tokens: the same
snippets, say), never for a lone BOS. The least recently used entry goes first, and an entry
that grew for one long prompt gives the memory back when a short one follows.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch

from ..errors import Cancelled
from ..model.diffusion_gemma import DiffusionGemma
from ..model.kv_cache import KVCache

HEADROOM = 256  # positions kept free after the prompt: the canvases a generation appends


class PromptCache:
    def __init__(self, model: DiffusionGemma, max_entries: int = 8, chunk_tokens: int = 512, min_shared: int = 32):
        self.model = model
        self.max_entries = max_entries
        self.chunk_tokens = chunk_tokens  # long prompts are encoded in chunks, checking `cancel` between them
        self.min_shared = min_shared
        self.entries: OrderedDict[str, KVCache] = OrderedDict()  # most recently used last
        self.tokens_encoded = 0  # running total, for `dg/status`, tests and benchmarks

    @torch.inference_mode()
    def prepare(self, prompt: Sequence[int], cancel: Callable[[], bool] | None = None,
                key: str = "") -> tuple[KVCache, int]:
        """A cache holding exactly `prompt` (for the document `key`), and how many tokens had to be
        encoded for it."""
        if not prompt:
            raise ValueError("the prompt is empty")
        prompt = list(prompt)
        cache, shared = self._entry(key, prompt)
        cache.truncate(shared)  # also drops what an earlier generation appended after the prompt
        cache.shrink(len(prompt) + HEADROOM)
        device = self.model.embed_tokens.weight.device
        todo = torch.tensor([prompt[shared:]], dtype=torch.long)
        for start in range(0, todo.shape[1], self.chunk_tokens):
            if cancel is not None and cancel():
                raise Cancelled("generation cancelled")
            self.model.encode(todo[:, start : start + self.chunk_tokens].to(device), cache)
        encoded = todo.shape[1]
        self.tokens_encoded += encoded
        return cache, encoded

    def clear(self) -> None:
        self.entries.clear()

    def nbytes(self) -> int:
        return sum(entry.nbytes() for entry in self.entries.values())

    def _entry(self, key: str, prompt: list[int]) -> tuple[KVCache, int]:
        own = self.entries.get(key)
        if own is not None:
            self.entries.move_to_end(key)
            return own, _common_prefix(own, prompt)
        donor, shared = None, 0
        for entry in self.entries.values():
            common = _common_prefix(entry, prompt)
            if common >= self.min_shared and common > shared:
                donor, shared = entry, common
        cache = self.model.new_cache(batch_size=1, capacity=len(prompt) + HEADROOM)
        if donor is not None:
            cache.copy_prefix(donor, shared)
        self.entries[key] = cache
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
        return cache, shared


def _common_prefix(cache: KVCache, prompt: list[int]) -> int:
    if cache.token_ids is None or cache.length == 0:
        return 0
    cached = cache.token_ids[0, : min(cache.length, len(prompt))]
    same = cached == torch.tensor(prompt[: cached.shape[0]], dtype=torch.long)
    mismatch = torch.nonzero(~same)
    return int(mismatch[0, 0]) if mismatch.numel() else int(cached.shape[0])
