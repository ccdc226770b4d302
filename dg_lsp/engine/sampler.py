"""Block-diffusion decoding: the reference DiffusionGemma algorithm, in token ids only.

Canvases are generated one after another (autoregressive over blocks); each is denoised
in parallel over a few steps:

1. the canvas starts as uniform random tokens (there is no mask token);
2. each step runs the decoder, divides the logits by a temperature that falls linearly
   from `t_max` to `t_min`, samples a token per position and accepts the lowest-entropy
   positions while `cumsum(entropy) - max <= entropy_bound`; the rest are re-noised with
   fresh random tokens; the step's logits condition the next step (self-conditioning);
3. the canvas is done when its argmax has been stable for `stability_threshold` steps and
   its mean entropy is below `confidence_threshold`, or after `max_denoising_steps`;
4. the argmax canvas is the output, with each token's confidence: its probability under the
   distribution of the step that last set it. A stop token ends generation (later tokens
   become pad); otherwise the canvas is encoded into the KV cache and the next one starts.

Random draws happen in the reference's order (initial canvas, then per step a sampling
draw and a re-noising draw); with `sampling="reference"` they are the reference's own
calls, so the same seed gives the reference's tokens. This module
knows nothing about text; it checks `cancel` between steps.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import Cancelled
from ..kernels.sampling import fused_sample, fused_sampling_available
from ..model.diffusion_gemma import DiffusionGemma
from ..model.kv_cache import KVCache


# What a disallowed token's logit becomes: finite, so entropies stay numbers (0 * log 0 is NaN).
MASKED_LOGIT = -1e4
# On a CPU a step's logits are raised to at least this far below each position's best. exp() of a
# float32 under about -87 underflows, and both the underflow (a slow path of the vectorized exp)
# and the denormal probabilities it leaves (microcode assists in the self-conditioning matmul)
# cost more than the decoder itself: at the default model's low temperature 8% of a step's
# probabilities were denormal, and a step took 23 ms instead of 7. A token this far below
# has a probability under e^-80 (1.8e-35) either way.
CPU_LOGIT_RANGE = 80.0


@dataclass
class DenoiseSettings:
    canvas_length: int = 32
    max_new_tokens: int | None = None  # None: one canvas
    max_denoising_steps: int = 48
    t_max: float = 0.8
    t_min: float = 0.4
    entropy_bound: float = 0.1
    stability_threshold: int = 1
    confidence_threshold: float = 0.005
    stop_token_ids: tuple[int, ...] = ()
    pad_token_id: int = 0
    # "fast": one uniform draw per position (inverse CDF), ~40x cheaper than torch.multinomial on
    # a CPU. "reference": torch.multinomial, the reference's exact random stream (parity tests).
    sampling: str = "fast"

    def validate(self) -> None:
        if self.canvas_length < 1:
            raise ValueError(f"canvas_length must be positive, got {self.canvas_length}")
        if self.max_denoising_steps < 1:
            raise ValueError(f"max_denoising_steps must be positive, got {self.max_denoising_steps}")
        if not 0 <= self.t_min < self.t_max:
            raise ValueError(f"need 0 <= t_min < t_max, got t_min={self.t_min}, t_max={self.t_max}")
        if self.entropy_bound <= 0:
            raise ValueError(f"entropy_bound must be positive, got {self.entropy_bound}")
        if self.sampling not in ("fast", "reference"):
            raise ValueError(f"sampling must be 'fast' or 'reference', got {self.sampling!r}")

    @property
    def num_canvases(self) -> int:
        return max(1, math.ceil((self.max_new_tokens or self.canvas_length) / self.canvas_length))


@dataclass
class GenerateResult:
    tokens: torch.Tensor  # [B, canvases * C]; after a stop token, pad
    nfe: int  # decoder forward passes
    steps: list[int]  # denoising steps spent on each canvas
    stopped: bool  # a stop token was produced (rather than running out of canvases)
    confidence: torch.Tensor | None = None  # [B, canvases * C] float: each token's probability; 0 after a stop


# -- one step, as small functions --------------------------------------------------------


def temperature(remaining_steps: int, settings: DenoiseSettings) -> float:
    """Linear schedule: t_max at the first step, approaching t_min at the last (steps count down)."""
    return settings.t_min + (settings.t_max - settings.t_min) * remaining_steps / settings.max_denoising_steps


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """[..., V] -> [...]: entropy of softmax(logits), in nats."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1)


def entropy_bound_accept(entropy: torch.Tensor, bound: float) -> torch.Tensor:
    """[B, C] -> bool [B, C]: accept the k lowest-entropy positions with
    sum(entropies) - max(entropies) <= bound (nearly independent tokens; at least one)."""
    sorted_entropy, order = torch.sort(entropy, dim=-1)
    keep_sorted = torch.cumsum(sorted_entropy, dim=-1) - sorted_entropy <= bound
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


def sample_tokens(probs: torch.Tensor, generator: torch.Generator | None, method: str) -> torch.Tensor:
    """probs: [N, V] -> one token per row, drawn from each row's distribution."""
    if method == "reference":
        return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)
    cdf = probs.cumsum(dim=-1)
    u = torch.rand(probs.shape[0], 1, device=probs.device, generator=generator) * cdf[:, -1:]
    # right=True: a zero-probability token owns an empty interval and is never drawn.
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_max(probs.shape[-1] - 1)


def sample_argmax_entropy(
    logits: torch.Tensor, generator: torch.Generator | None, method: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """logits: [N, V] -> (sampled, argmax, entropy) per row. On CUDA, "fast" is one fused
    kernel pass (Gumbel-max draw, no [N, V] probabilities); elsewhere the step's plain chain,
    so CPU results and the "reference" random stream stay as they were."""
    if method == "fast" and fused_sampling_available(logits):
        seed = torch.randint(0, 2**62, (1,), device=logits.device, generator=generator)
        return fused_sample(logits, 1.0, seed)
    probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
    return sample_tokens(probs, generator, method), logits.argmax(dim=-1), token_entropy(logits)


def random_canvas(shape: tuple[int, int], vocab_size: int, device, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randint(0, vocab_size, shape, device=device, generator=generator)


@dataclass
class StepOutput:
    canvas: torch.Tensor  # [B, C] next canvas: accepted tokens kept, the rest re-noised
    sampled: torch.Tensor  # [B, C] token drawn per position
    argmax: torch.Tensor  # [B, C] most likely token per position
    logits: torch.Tensor  # [B, C, V] temperature-scaled logits (the next self-conditioning input)
    entropy: torch.Tensor  # [B, C] entropy of those logits
    accepted: torch.Tensor  # bool [B, C]


def denoise_step(
    model: DiffusionGemma,
    cache: KVCache,
    canvas: torch.Tensor,
    self_cond: torch.Tensor | None,
    remaining_steps: int,
    settings: DenoiseSettings,
    generator: torch.Generator | None,
    first_allowed: torch.Tensor | None = None,
) -> StepOutput:
    logits = model.denoise(canvas, cache, self_cond) / temperature(remaining_steps, settings)
    if logits.device.type == "cpu":
        logits = logits.clamp_min(logits.amax(dim=-1, keepdim=True) - CPU_LOGIT_RANGE)
    if first_allowed is not None:  # a healed prompt: the first position may only extend the dropped token
        logits[:, 0] = logits[:, 0].masked_fill(~first_allowed, MASKED_LOGIT)
    b, c, v = logits.shape
    per_row = sample_argmax_entropy(logits.view(-1, v), generator, settings.sampling)
    sampled, argmax, entropy = (t.view(b, c) for t in per_row)
    accepted = entropy_bound_accept(entropy, settings.entropy_bound)
    noise = random_canvas((b, c), v, canvas.device, generator)
    next_canvas = torch.where(accepted, sampled, noise)
    return StepOutput(next_canvas, sampled, argmax, logits, entropy, accepted)


# -- one canvas ----------------------------------------------------------------------------


@torch.inference_mode()
def denoise_canvas(
    model: DiffusionGemma,
    cache: KVCache,
    settings: DenoiseSettings,
    generator: torch.Generator | None = None,
    cancel: Callable[[], bool] | None = None,
    initial_canvas: torch.Tensor | None = None,
    on_step: Callable[[StepOutput], None] | None = None,
    batch_size: int | None = None,
    initial_self_cond: torch.Tensor | None = None,
    first_allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int, torch.Tensor]:
    """Denoise one canvas after the cached prompt. Returns (argmax canvas [B, C], nfe, confidence
    [B, C]: each argmax token's probability under the final step's distribution).

    `batch_size` > the cache's batch denoises several independent canvases over one prompt.
    `initial_canvas` and `initial_self_cond` (logits [B, C, V]) start from a draft instead of
    pure noise: that is how a selection is rewritten in place. `first_allowed` (bool [V]) limits
    the canvas's first position to those tokens (a healed prompt, `dg_lsp.prompt.healing`)."""
    batch = batch_size or cache.batch_size
    vocab = model.config.vocab_size
    device = model.embed_tokens.weight.device
    # Drawn even when a canvas is given, as the reference does, so later draws stay aligned.
    canvas = random_canvas((batch, settings.canvas_length), vocab, device, generator)
    if initial_canvas is not None:
        canvas = initial_canvas.to(device)
    argmax, self_cond = canvas, initial_self_cond
    confidence = torch.zeros(canvas.shape, dtype=torch.float32, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    history: deque[torch.Tensor] = deque(maxlen=settings.stability_threshold)
    embed_dtype = model.embed_tokens.weight.dtype
    nfe = 0
    for remaining in range(settings.max_denoising_steps, 0, -1):
        if cancel is not None and cancel():
            raise Cancelled("generation cancelled")
        step = denoise_step(model, cache, canvas, self_cond, remaining, settings, generator, first_allowed)
        nfe += 1
        if on_step is not None:
            on_step(step)
        # Rows that already stopped keep their canvas (only matters for batches).
        keep = finished[:, None]
        new_argmax = torch.where(keep, argmax, step.argmax)
        # The argmax's own probability: max(softmax) = exp(max logit - logsumexp).
        logits_f = step.logits.float()
        step_confidence = torch.exp(logits_f.amax(dim=-1) - torch.logsumexp(logits_f, dim=-1))
        confidence = torch.where(keep, confidence, step_confidence)
        canvas = torch.where(keep, canvas, step.canvas)
        logits = step.logits if self_cond is None else torch.where(keep[..., None], self_cond.float(), step.logits)
        stable = (
            torch.ones_like(finished)
            if settings.stability_threshold == 0
            else _all_equal(history, new_argmax, settings.stability_threshold)
        )
        history.append(new_argmax)
        confident = step.entropy.mean(dim=-1) < settings.confidence_threshold
        finished |= stable & confident
        argmax, self_cond = new_argmax, logits.to(embed_dtype)
        if bool(finished.all()):
            break
    return argmax, nfe, confidence


def _all_equal(history: deque, current: torch.Tensor, needed: int) -> torch.Tensor:
    """bool [B]: the last `needed` argmax canvases all equal the current one."""
    if len(history) < needed:
        return torch.zeros(current.shape[0], dtype=torch.bool, device=current.device)
    return torch.stack([(h == current).all(dim=-1) for h in history]).all(dim=0)


# -- a whole generation --------------------------------------------------------------------


@torch.inference_mode()
def generate(
    model: DiffusionGemma,
    cache: KVCache,
    settings: DenoiseSettings,
    generator: torch.Generator | None = None,
    cancel: Callable[[], bool] | None = None,
    initial_canvas: torch.Tensor | None = None,
    batch_size: int | None = None,
    initial_self_cond: torch.Tensor | None = None,
    first_allowed: torch.Tensor | None = None,
) -> GenerateResult:
    """Generate canvases after the prompt already encoded in `cache`.

    Canvases before the last are encoded into `cache` (extending it), as the reference does.
    A `batch_size` above the cache's (candidates over one prompt) allows a single canvas.
    `first_allowed` limits the first token of the first canvas (see `denoise_canvas`).
    """
    settings.validate()
    batch = batch_size or cache.batch_size
    if batch != cache.batch_size and settings.num_canvases > 1:
        raise ValueError("several candidates over one cached prompt fit in a single canvas")
    outputs, steps, confidences = [], [], []
    stop_ids = torch.tensor(settings.stop_token_ids, dtype=torch.long)
    done = torch.zeros(batch, dtype=torch.bool)
    stopped = False
    for index in range(settings.num_canvases):
        first = index == 0
        canvas, nfe, confidence = denoise_canvas(
            model, cache, settings, generator, cancel, initial_canvas if first else None, None, batch,
            initial_self_cond if first else None, first_allowed if first else None,
        )
        canvas = canvas.cpu()
        canvas[done] = settings.pad_token_id  # rows that stopped in an earlier canvas
        is_stop = torch.isin(canvas, stop_ids)
        after_stop = torch.cumsum(is_stop.int(), dim=-1) - is_stop.int() > 0
        canvas[after_stop] = settings.pad_token_id
        confidence = confidence.cpu()
        confidence[done] = 0.0
        confidence[after_stop] = 0.0
        outputs.append(canvas)
        confidences.append(confidence)
        steps.append(nfe)
        done |= is_stop.any(dim=-1)
        if bool(done.all()):
            stopped = True
            break
        if index + 1 < settings.num_canvases:
            if cancel is not None and cancel():
                raise Cancelled("generation cancelled")
            model.encode(canvas.to(model.embed_tokens.weight.device), cache)
    return GenerateResult(torch.cat(outputs, dim=1), sum(steps), steps, stopped, torch.cat(confidences, dim=1))
