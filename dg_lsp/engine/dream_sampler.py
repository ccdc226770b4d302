"""Masked-diffusion infilling for the Dream family, in token ids only.

The sequence is `[bos] prefix [mask]*k suffix [eos]` and the gap is filled in place: every
step runs the model over the sequence (the logits are already shifted: `logits[:, i]`
predicts token i), scores each still-masked position of the current block and commits some
of them, until no mask is left or the step budget is spent. What is published (Dream,
Dream-Coder, DreamOn generation code; Fast-dLLM) and what this module does:

- a token per position: temperature, then top-p, then a draw from the seeded generator (the
  argmax at temperature 0); its probability is the token's confidence, kept when committed;
- which positions to commit (`alg`): "origin" commits each masked position with the same
  probability (random order); "maskgit_plus" (alias "confidence") ranks them by that
  probability, "topk_margin" by top-1 minus top-2 probability, "entropy" by negative entropy;
  `alg_temp` > 0 draws the ranked positions instead of taking the best;
- how many: the masks left spread evenly over the steps left (one per step when the budget
  equals the gap). Dream's own schedule, `int(masks * (1 - s/t))`, can commit nothing for
  several steps and everything at the last; spreading them does the same work without idle
  steps. With `threshold` (Fast-dLLM parallel decoding), every masked position whose token
  has at least that probability is committed too, and always at least one;
- blocks (`block_length`, Fast-dLLM): the gap is decoded left to right in blocks, each with
  its share of the step budget (at least one step each);
- DreamOn (`variable_length`): an `[expand]` committed at a position becomes two masks, and an
  EOS committed inside the gap deletes that position and every mask after it (DreamOn pads the
  masks after the first EOS with EOS and deletes them), so the gap grows by up to `max_grow`
  tokens and shrinks to what the model wants. Elsewhere `[expand]` is never drawn.

The model calls go through `dream_cache.SpanForward`, which may reuse keys and values
across steps (the dual cache). `cancel` is checked before every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from ..errors import Cancelled
from .sampler import sample_tokens

ALGORITHMS = ("origin", "maskgit_plus", "topk_margin", "entropy")
ALIASES = {"confidence": "maskgit_plus"}
MAX_GROW = 64  # DreamOn's model card: the gap grows (and shrinks) by up to 64 tokens


@dataclass(frozen=True)
class DreamDecoding:
    """How a gap is decoded; `validate` says what is wrong with a bad combination."""

    steps: int = 32  # the step budget: forward passes at most (one per step)
    alg: str = "entropy"
    temperature: float = 0.2
    top_p: float | None = 0.95
    alg_temp: float | None = None
    threshold: float | None = None  # Fast-dLLM: commit every masked position at least this confident
    block_length: int | None = None  # None: the whole gap is one block
    dual_cache: bool = False  # Fast-dLLM: reuse the KV outside the block across the steps of a block
    refresh_every: int | None = None  # with the dual cache: recompute it every N steps too (1: exact)
    reuse_prompt_kv: bool = False  # first step: the shared start of the last prompt's keys (approximate)
    variable_length: bool = False  # DreamOn: [expand] grows the gap, EOS shrinks it
    max_grow: int = MAX_GROW

    def validate(self) -> DreamDecoding:
        alg = ALIASES.get(self.alg, self.alg)
        if alg not in ALGORITHMS:
            raise ValueError(f"unknown unmasking rule {self.alg!r}; expected one of {ALGORITHMS + tuple(ALIASES)}")
        if self.steps < 1:
            raise ValueError(f"the step budget must be at least 1, got {self.steps}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.threshold is not None and not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.block_length is not None and self.block_length < 1:
            raise ValueError(f"block_length must be positive, got {self.block_length}")
        if self.refresh_every is not None and self.refresh_every < 1:
            raise ValueError(f"refresh_every must be positive, got {self.refresh_every}")
        if self.variable_length and self.block_length is not None:
            raise ValueError("a variable-length gap is decoded as one block (its length changes)")
        if self.max_grow < 0:
            raise ValueError(f"max_grow must be >= 0, got {self.max_grow}")
        return self if alg == self.alg else replace(self, alg=alg)


@dataclass(frozen=True)
class SpecialTokens:
    mask: int
    eos: int | None = None
    expand: int | None = None  # DreamOn's [expand]; None elsewhere


@dataclass
class InfillResult:
    tokens: list[list[int]]  # per row: the gap's tokens (DreamOn: its final length)
    confidence: list[list[float]]  # per row: each token's probability when it was committed
    nfe: int  # model forward passes
    steps: int  # denoising steps taken
    lengths: list[int] = field(default_factory=list)  # gap length per row


# -- one step: a token per masked position, and which to commit ---------------------------------


def top_p_filter(logits: torch.Tensor, top_p: float | None) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probabilities reach `top_p`: a token
    stays while the probability of the tokens before it is at most `top_p` (the first always).

    Sorting a 152k vocabulary takes about 70 ms a row on one CPU core, so the nucleus is looked
    for in the top 64 tokens, then the top 1024, then everything: exact, and one cheap `topk`
    when the model is sure of itself (a nearly uniform one pays for the sort)."""
    if top_p is None or top_p >= 1:
        return logits
    probs = torch.softmax(logits, dim=-1)
    vocab, k = probs.shape[-1], min(64, probs.shape[-1])
    while True:
        values, index = probs.topk(k, dim=-1)
        cumulative = values.cumsum(dim=-1)
        if k == vocab or bool((cumulative[..., -1] > top_p).all()):
            break
        k = min(vocab, 16 * k)
    keep_top = cumulative - values <= top_p
    keep_top[..., 0] = True
    keep = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, index, keep_top)
    return logits.masked_fill(~keep, float("-inf"))


def propose(logits: torch.Tensor, settings: DreamDecoding, generator: torch.Generator | None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """logits [N, V] -> (token, probability of that token, ranking score), one per row."""
    logits = logits.float()
    if settings.temperature > 0:
        logits = logits / settings.temperature
    probs = torch.softmax(top_p_filter(logits, settings.top_p), dim=-1)
    if settings.temperature > 0:
        # One uniform draw per row through the CDF: torch.multinomial is ~20x slower over 152k tokens on a CPU.
        tokens = sample_tokens(probs, generator, "fast")
    else:
        tokens = probs.argmax(dim=-1)
    prob = probs.gather(-1, tokens[:, None]).squeeze(-1)
    if settings.alg == "topk_margin":
        top2 = probs.topk(2, dim=-1).values
        score = top2[:, 0] - top2[:, 1]
    elif settings.alg == "entropy":
        score = (probs * torch.log(probs + 1e-10)).sum(dim=-1)  # negative entropy: higher is surer
    else:
        score = prob
    return tokens, prob, score


def commit_count(masked: int, steps_left: int) -> int:
    """Masks to commit this step so the rest fit in the steps left (all of them at the last)."""
    return masked if steps_left <= 1 else max(1, math.ceil(masked / steps_left))


def choose(prob: torch.Tensor, score: torch.Tensor, settings: DreamDecoding, steps_left: int,
           generator: torch.Generator | None) -> torch.Tensor:
    """bool [N]: which of one row's N masked positions to commit this step."""
    n = prob.shape[0]
    chosen = torch.zeros(n, dtype=torch.bool, device=prob.device)
    if settings.alg == "origin":
        if steps_left <= 1:
            return ~chosen
        draw = torch.rand(n, device=prob.device, generator=generator)
        return draw < 1.0 / steps_left
    count = min(n, commit_count(n, steps_left))
    if settings.alg_temp:
        weights = torch.softmax(score / settings.alg_temp, dim=-1)
        index = torch.multinomial(weights, count, replacement=False, generator=generator)
    else:
        index = torch.topk(score, count).indices
    chosen[index] = True
    if settings.threshold is not None:
        chosen |= prob >= settings.threshold
    return chosen


# -- the loop -----------------------------------------------------------------------------------


@torch.inference_mode()
def infill(
    forward,  # dream_cache.SpanForward: (ids [B, L], start, end) -> shifted logits [B, end - start, V]
    prefix: list[int],
    suffix: list[int],
    gap: torch.Tensor,  # [B, k] the starting gap: mask ids, or a draft with some positions masked
    settings: DreamDecoding,
    special: SpecialTokens,
    generator: torch.Generator | None = None,
    cancel: Callable[[], bool] | None = None,
    max_length: int | None = None,  # the longest sequence the model takes (DreamOn growth stops there)
) -> InfillResult:
    settings = settings.validate()
    if settings.variable_length and gap.shape[0] != 1:
        raise ValueError("a variable-length gap is decoded one candidate at a time")
    device = forward.device
    mask = special.mask
    batch, k = gap.shape
    start = len(prefix)
    ids = torch.cat([
        torch.tensor([prefix], dtype=torch.long).expand(batch, -1),
        gap.to(torch.long).cpu(),
        torch.tensor([suffix], dtype=torch.long).expand(batch, -1),
    ], dim=1).to(device)
    # Tokens given in the gap (a rewrite's kept draft) count as certain.
    confidence = torch.where(gap.cpu() == mask, 0.0, 1.0).to(device)
    longest_gap = k + settings.max_grow
    if max_length is not None:
        longest_gap = min(longest_gap, max_length - len(prefix) - len(suffix))
    block = settings.block_length or max(1, k)
    blocks = max(1, math.ceil(k / block)) if not settings.variable_length else 1
    nfe, steps = 0, 0
    for index in range(blocks):
        forward.reset()  # block boundary: the dual cache is recomputed
        budget = max(1, math.ceil((settings.steps - steps) / (blocks - index)))
        for step in range(budget):
            length = ids.shape[1] - len(prefix) - len(suffix)
            lo = start + index * block
            hi = start + (length if settings.variable_length or index == blocks - 1 else (index + 1) * block)
            masked = ids[:, lo:hi] == mask
            if not bool(masked.any()):
                break
            if cancel is not None and cancel():
                raise Cancelled("generation cancelled")
            logits = forward(ids, lo, hi)
            nfe, steps = nfe + forward.last_nfe, steps + 1
            last = step == budget - 1
            grow = settings.variable_length and not last and length < longest_gap
            logits = _allowed(logits, special, grow)
            committed = torch.zeros_like(masked)
            for row in range(batch):
                where = masked[row].nonzero().squeeze(-1)
                if where.numel() == 0:  # this candidate's block is done (a threshold let it go faster)
                    continue
                tokens, prob, score = propose(logits[row, where], settings, generator)
                take = choose(prob, score, settings, budget - step, generator)
                ids[row, lo + where[take]] = tokens[take]
                confidence[row, lo - start + where[take]] = prob[take]
                committed[row, where[take]] = True
            if settings.variable_length:
                before = ids.shape[1]
                ids, confidence = _dreamon_edit(ids, confidence, committed, lo, hi, start, special, longest_gap)
                if ids.shape[1] != before:
                    forward.reset()  # the suffix moved: its cached positions no longer hold
    end = ids.shape[1] - len(suffix)
    tokens = ids[:, start:end].tolist()
    confidences = confidence.tolist()
    return InfillResult(tokens, confidences, nfe, steps, [len(row) for row in tokens])


def _allowed(logits: torch.Tensor, special: SpecialTokens, grow: bool) -> torch.Tensor:
    """The mask token is never a prediction; [expand] only where the gap may still grow."""
    logits = logits.clone()
    logits[..., special.mask] = float("-inf")
    if special.expand is not None and not grow:
        logits[..., special.expand] = float("-inf")
    return logits


def _dreamon_edit(ids, confidence, committed, lo, hi, start, special: SpecialTokens, longest_gap: int):
    """DreamOn's length edits on a single row (positions [lo, hi) are the gap's block):
    an EOS just committed deletes itself and every mask after it in the gap; an [expand] just
    committed becomes two masks (one, once the gap is as long as it may get)."""
    row, conf = ids[0].tolist(), confidence[0].tolist()
    fresh = committed[0].tolist()
    gap_tokens, gap_conf = row[lo:hi], conf[lo - start : hi - start]
    first_eos = next((i for i, (t, new) in enumerate(zip(gap_tokens, fresh))
                      if new and special.eos is not None and t == special.eos), None)
    kept_tokens, kept_conf = [], []
    length = len(gap_tokens)
    for i, (token, c, new) in enumerate(zip(gap_tokens, gap_conf, fresh)):
        if first_eos is not None and i >= first_eos and (i == first_eos or token == special.mask
                                                         or (new and token == special.eos)):
            length -= 1
            continue
        if new and special.expand is not None and token == special.expand:
            if length < longest_gap:
                kept_tokens += [special.mask, special.mask]
                kept_conf += [0.0, 0.0]
                length += 1
            else:
                kept_tokens.append(special.mask)
                kept_conf.append(0.0)
            continue
        kept_tokens.append(token)
        kept_conf.append(c)
    row = row[:lo] + kept_tokens + row[hi:]
    conf = conf[: lo - start] + kept_conf + conf[hi - start :]
    return (torch.tensor([row], dtype=torch.long, device=ids.device),
            torch.tensor([conf], dtype=confidence.dtype, device=confidence.device))
