"""Greedy left-to-right decoding through a DiffusionGemma model's causal encoder.

The causal encoder is a language model: `encode` writes the KV cache and returns the
final-normed hidden states, and `logits` turns the last one into next-token logits. The engine
uses it to seed an invoked request's canvas (`Engine.generate(greedy_seed=True)`); the
benchmarks' autoregressive baseline (`dg_lsp.evaluation.autoregressive`) is the same loop.
"""

from __future__ import annotations

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


def greedy_tokens(engine: Engine, prompt: list[int], max_new_tokens: int, cancel=None, first_allowed=None):
    """Greedy decoding of `prompt` (ids): (tokens, their probabilities, stopped, (start, encoded,
    decoded) clock readings). Checks `cancel` before every token. `first_allowed` (bool [V], a
    healed prompt) limits the first token, whose probability is then among those tokens."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    model, device = engine.model, engine.device
    stops = set(engine.defaults.stop_token_ids)
    ids = torch.tensor([prompt], dtype=torch.long, device=device)  # [1, T]
    generated: list[int] = []
    probabilities: list[float] = []
    stopped = False
    with torch.inference_mode():
        cache = model.new_cache(batch_size=1, capacity=len(prompt) + max_new_tokens)
        t0 = device_clock(device)
        logits = prefill(model, ids, cache)  # [1, V]
        if first_allowed is not None:
            logits = logits.float().masked_fill(~first_allowed, float("-inf"))
        t1 = device_clock(device)
        while True:
            if cancel is not None and cancel():
                raise Cancelled("generation cancelled")
            token = int(logits.argmax(dim=-1))  # one sync per token, needed to test for a stop anyway
            if token in stops:
                stopped = True
                break
            generated.append(token)
            probabilities.append(float(torch.softmax(logits[0].float(), dim=-1)[token]))
            if len(generated) >= max_new_tokens:
                break
            logits = decode_one_token(model, torch.tensor([[token]], dtype=torch.long, device=device), cache)
        t2 = device_clock(device)
    return generated, probabilities, stopped, (t0, t1, t2)
