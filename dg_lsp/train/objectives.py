"""The two training objectives the architecture uses, on one batch, sharing one encoder pass
(and `next_token_loss`, plain pretraining of the shared weights on contiguous windows).

- Next-token loss for the causal encoder over `prompt + target`: the same weights can then
  decode autoregressively (the middle follows the SPM prompt directly).
- Denoising loss for the canvas decoder: each target token is replaced by a uniformly random
  token with probability t ~ U(0, 1) (uniform re-noising, no mask token), and the decoder,
  reading the prompt's KV, predicts the clean canvas. Half the time it is self-conditioned on
  its own first guess (temperature-scaled like the sampler's), computed without gradients.
  With `replaced_only`, the denoising loss counts only the positions that were re-noised
  (the "simple" uniform-state loss of Zhu et al., 2026). Counted everywhere, the loss is
  dominated by the positions left clean, which a weak model learns to copy; that hides how
  little it predicts the re-noised ones from the prompt.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model.diffusion_gemma import DiffusionGemma
from .data import PAD, Batch

PAD_WEIGHT = 0.1  # padding after <eos> still teaches "nothing more", but counts less


def losses(model: DiffusionGemma, batch: Batch, generator: torch.Generator, self_cond_share: float = 0.5,
           ar_context: int = 64, replaced_only: bool = False):
    """(next-token loss, denoising loss). The next-token loss covers the target and the last
    `ar_context` prompt tokens (see `TrainSettings.ar_context`)."""
    prompt, target = batch.prompt, batch.target  # [B, P], [B, C]
    b, p = prompt.shape
    sequence = torch.cat([prompt, target], dim=1)

    cache = model.new_cache(batch_size=b, capacity=sequence.shape[1])
    hidden = model.encode(sequence, cache)  # [B, P + C, H]
    first = max(0, p - ar_context)
    logits = model.logits(hidden[:, first:-1])  # predicts sequence[:, first + 1:]
    next_tokens = sequence[:, first + 1 :]
    weights = (next_tokens != PAD).float()
    ar = (F.cross_entropy(logits.transpose(1, 2), next_tokens, reduction="none") * weights).sum() / weights.sum()

    cache.truncate(p)  # the decoder reads the prompt only (causal: its KV ignores the target)
    # Drawn from the CPU generator (reproducible on any device), then moved beside the target.
    noise_level = torch.rand(b, 1, generator=generator)
    replace = (torch.rand(target.shape, generator=generator) < noise_level).to(target.device)
    random_tokens = torch.randint(0, model.config.vocab_size, target.shape, generator=generator).to(target.device)
    noised = torch.where(replace, random_tokens, target)
    self_cond = None
    if torch.rand(1, generator=generator).item() < self_cond_share:
        with torch.no_grad():
            temperature = 0.4 + 0.4 * torch.rand(1, generator=generator).item()
            self_cond = model.denoise(noised, cache) / temperature
    canvas_logits = model.denoise(noised, cache, self_cond)
    token_weights = torch.where(target == PAD, PAD_WEIGHT, 1.0)
    if replaced_only:
        token_weights = token_weights * replace
    per_token = F.cross_entropy(canvas_logits.transpose(1, 2), target, reduction="none")
    diffusion = (per_token * token_weights).sum() / token_weights.sum().clamp_min(1e-6)
    return ar, diffusion


def next_token_loss(model: DiffusionGemma, windows: torch.Tensor) -> torch.Tensor:
    """Next-token loss over every position of contiguous windows [B, L]: the cheapest signal
    per token for the weights the encoder and the decoder share (no canvas, no FIM markers)."""
    b, length = windows.shape
    cache = model.new_cache(batch_size=b, capacity=length)
    logits = model.logits(model.encode(windows[:, :-1], cache))
    targets = windows[:, 1:]
    weights = (targets != PAD).float()
    return (F.cross_entropy(logits.transpose(1, 2), targets, reduction="none") * weights).sum() / weights.sum()
