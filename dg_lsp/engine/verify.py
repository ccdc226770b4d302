"""Check a denoised canvas with the causal encoder: how likely is each token, read left to right?

The encoder and the decoder share their weights, and the encoder is a causal language model
(it is trained on next-token loss as well as the decoder on denoising). One encoder pass over
the prompt's last token and a row gives every row token's next-token probability given the
prompt and the row before it, as speculative decoding verifies a draft. The product of those
probabilities over a prefix is the model's probability that the prefix is what follows the
prompt, which is what the confidence gate needs: on held-out line holes it picks right
completions far better than the final denoising step's own probabilities, whose
self-conditioning has already seen the canvas it is asked about (benchmarks/confidence.py).

The pass appends to the prompt's KV cache and cuts it back, so the prompt cache still holds
exactly the prompt afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..errors import Cancelled
from ..model.diffusion_gemma import DiffusionGemma
from ..model.kv_cache import KVCache


@torch.inference_mode()
def encoder_probabilities(model: DiffusionGemma, cache: KVCache, prompt: Sequence[int], rows: Sequence[Sequence[int]],
                          cancel: Callable[[], bool] | None = None,
                          first_allowed: torch.Tensor | None = None) -> list[list[float]]:
    """For each row, each token's probability under the causal encoder, given `prompt` (held by
    `cache`, which may also hold generated canvases after it) and the row's earlier tokens.
    With `first_allowed` (bool [V], a healed prompt) the first token's probability is among
    those tokens only: the prompt's text says the row starts with one of them."""
    length = len(prompt)
    device = model.embed_tokens.weight.device
    probabilities = []
    for row in rows:
        if cancel is not None and cancel():
            raise Cancelled("generation cancelled")
        if not row:
            probabilities.append([])
            continue
        # Re-encode the prompt's last token (its next-token logits predict the row's first) and
        # the row but its last token (the logits after it predict nothing we show).
        cache.truncate(length - 1)
        ids = torch.tensor([[prompt[-1], *row[:-1]]], dtype=torch.long, device=device)
        logits = model.logits(model.encode(ids, cache))[0].float()  # [len(row), V]
        if first_allowed is not None:
            logits[0] = logits[0].masked_fill(~first_allowed, float("-inf"))
        log_probs = torch.log_softmax(logits, dim=-1)
        chosen = log_probs.gather(-1, torch.tensor(row, device=device)[:, None])[:, 0]
        probabilities.append(chosen.exp().tolist())
    cache.truncate(length)
    return probabilities
