"""Greedy left-to-right decoding through a DiffusionGemma model's causal encoder.

The causal encoder is a language model: `encode` writes the KV cache and returns the
final-normed hidden states, and `logits` turns the last one into next-token logits. The engine
uses it to seed an invoked request's canvas (`Engine.generate(greedy_seed=True)`), continuing
the prompt already in its prompt cache (`continue_greedily`); the benchmarks' autoregressive
baseline (`dg_lsp.evaluation.autoregressive`) is the same loop over a fresh cache
(`greedy_tokens`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

import torch

from ..errors import Cancelled
from .engine import device_clock

if TYPE_CHECKING:
    from ..model.diffusion_gemma import DiffusionGemma
    from ..model.kv_cache import KVCache
    from .engine import Engine


def prefill(model: DiffusionGemma, prompt: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """prompt: [1, T] into the empty `cache`; returns the next-token logits [1, V]."""
    hidden = model.encode(prompt, cache)  # [1, T, H]
    return model.logits(hidden[:, -1])


def decode_one_token(model: DiffusionGemma, token: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """token: [1, 1] appended to `cache`; returns the next-token logits [1, V]."""
    hidden = model.encode(token, cache)  # [1, 1, H]
    return model.logits(hidden[:, -1])


def greedy_tokens(engine: Engine, prompt: list[int], max_new_tokens: int, cancel=None, first_allowed=None,
                  ends: Collection[int] = ()):
    """Greedy decoding of `prompt` (ids) in a cache of its own: (tokens, their probabilities,
    stopped, (start, encoded, decoded) clock readings). Checks `cancel` before every token.
    `first_allowed` (bool [V], a healed prompt) limits the first token, whose probability is
    then among those tokens; decoding ends after a token in `ends` (the line breaks, say)."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    model, device = engine.model, engine.device
    ids = torch.tensor([prompt], dtype=torch.long, device=device)  # [1, T]
    with torch.inference_mode():
        cache = model.new_cache(batch_size=1, capacity=len(prompt) + max_new_tokens)
        t0 = device_clock(device)
        logits = prefill(model, ids, cache)  # [1, V]
        t1 = device_clock(device)
        generated, probabilities, stopped = _greedy_loop(model, cache, logits, max_new_tokens,
                                                         set(engine.defaults.stop_token_ids), cancel, first_allowed,
                                                         set(ends))
        t2 = device_clock(device)
    return generated, probabilities, stopped, (t0, t1, t2)


@torch.inference_mode()
def continue_greedily(model: DiffusionGemma, cache: KVCache, prompt: Sequence[int], max_new_tokens: int,
                      stops: Collection[int], cancel: Callable[[], bool] | None = None,
                      first_allowed: torch.Tensor | None = None,
                      ends: Collection[int] = (), max_ends: int = 1) -> tuple[list[int], list[float]]:
    """Greedy continuation of `prompt`, which `cache` holds (the prompt cache's entry): (tokens,
    their probabilities). It stops before a stop token, after the `max_ends`-th token in `ends`
    (the line breaks: one for a one-line request, a few for a block) or at `max_new_tokens`. Like `verify`, it re-encodes the
    prompt's last token for its next-token logits, appends, and cuts the cache back, so the
    cache holds exactly the prompt afterwards."""
    length = len(prompt)
    device = model.embed_tokens.weight.device
    cache.truncate(length - 1)
    try:
        logits = decode_one_token(model, torch.tensor([[prompt[-1]]], dtype=torch.long, device=device), cache)
        generated, probabilities, _ = _greedy_loop(model, cache, logits, max_new_tokens, set(stops), cancel,
                                                   first_allowed, set(ends), max_ends)
    finally:
        cache.truncate(length)
    return generated, probabilities


def _greedy_loop(model: DiffusionGemma, cache: KVCache, logits: torch.Tensor, max_new_tokens: int, stops: set[int],
                 cancel, first_allowed, ends: set[int] = frozenset(),
                 max_ends: int = 1) -> tuple[list[int], list[float], bool]:
    """From the prompt's next-token `logits` [1, V]: (tokens, probabilities, stopped at a stop
    token); it ends after the `max_ends`-th token in `ends`."""
    device = logits.device
    if first_allowed is not None:
        logits = logits.float().masked_fill(~first_allowed, float("-inf"))
    generated: list[int] = []
    probabilities: list[float] = []
    ends_seen = 0
    while True:
        if cancel is not None and cancel():
            raise Cancelled("generation cancelled")
        token = int(logits.argmax(dim=-1))  # one sync per token, needed to test for a stop anyway
        if token in stops:
            return generated, probabilities, True
        generated.append(token)
        probabilities.append(float(torch.softmax(logits[0].float(), dim=-1)[token]))
        ends_seen += token in ends
        if len(generated) >= max_new_tokens or ends_seen >= max_ends:
            return generated, probabilities, False
        logits = decode_one_token(model, torch.tensor([[token]], dtype=torch.long, device=device), cache)
