"""Keep the encoder's KV cache of recent prompts and re-encode only what changed.

A prompt that shares a prefix with a cached one reuses that prefix: the cache is cut back
to the common prefix (valid, because the encoder is causal) and only the remaining tokens
are encoded. Typing at the end of a prompt therefore encodes a handful of tokens per
keystroke. A few entries are kept (least recently used goes first), so switching between
documents does not throw away the other's cache.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import Cancelled
from ..model.diffusion_gemma import DiffusionGemma
from ..model.kv_cache import KVCache


class PromptCache:
    def __init__(self, model: DiffusionGemma, max_entries: int = 4, chunk_tokens: int = 512):
        self.model = model
        self.max_entries = max_entries
        self.chunk_tokens = chunk_tokens  # long prompts are encoded in chunks, checking `cancel` between them
        self.entries: list[KVCache] = []  # most recently used last
        self.tokens_encoded = 0  # running total, for tests and benchmarks

    @torch.inference_mode()
    def prepare(self, prompt: list[int], cancel: Callable[[], bool] | None = None) -> tuple[KVCache, int]:
        """A cache holding exactly `prompt`, and how many tokens had to be encoded for it."""
        if not prompt:
            raise ValueError("the prompt is empty")
        cache, shared = self._best_entry(prompt)
        cache.truncate(shared)  # also drops what an earlier generation appended after the prompt
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

    def _best_entry(self, prompt: list[int]) -> tuple[KVCache, int]:
        best, best_shared = None, 0
        for entry in self.entries:
            shared = _common_prefix(entry, prompt)
            if shared > best_shared:
                best, best_shared = entry, shared
        if best is None:
            best = self.model.new_cache(batch_size=1, capacity=max(256, len(prompt) + 64))
            if len(self.entries) >= self.max_entries:
                self.entries.pop(0)
        else:
            self.entries.remove(best)
        self.entries.append(best)
        return best, best_shared


def _common_prefix(cache: KVCache, prompt: list[int]) -> int:
    if cache.token_ids is None or cache.length == 0:
        return 0
    cached = cache.token_ids[0, : min(cache.length, len(prompt))]
    same = cached == torch.tensor(prompt[: cached.shape[0]], dtype=torch.long)
    mismatch = torch.nonzero(~same)
    return int(mismatch[0, 0]) if mismatch.numel() else int(cached.shape[0])
