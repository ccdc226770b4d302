"""Greedy left-to-right decoding of a DiffusionGemma checkpoint: the baseline for diffusion.

The model's causal encoder is a language model: `encode` writes the KV cache and returns the
final-normed hidden states, and `logits` turns the last one into next-token logits. So the
same weights can complete a FIM prompt one token at a time, which is what block diffusion is
measured against (same prompt, same weights, same stop tokens).

The ladder (`dg_lsp.engine.greedy`, which the engine also uses to seed invoked requests):
`prefill` (the prompt into a fresh KV cache, the first token's logits) -> `decode_one_token`
(one token through the encoder, the next logits) -> `greedy_tokens` -> `generate_autoregressive`
(the loop, with timings) -> `decode_autoregressive`, the `AutoregressiveDecoder` protocol the
benchmark is written against.

The prompt is exactly the one `Engine.infill` builds for the same prefix and suffix (the
engine's prompt builder, `engine.prompts`), so differences between the two decodings are the
decoding's. `AutoregressiveEngine` puts the same decoding behind the engine interface the
server uses (`generate(prompt) -> Generation`), so benchmarks can run it through the server's
own request path, confidence gate included (a token's confidence: its softmax probability). Decoding stops at any id of `engine.defaults.stop_token_ids`
(not part of the output) or after `max_new_tokens` tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import torch

from ..engine.greedy import decode_one_token, greedy_tokens, prefill  # noqa: F401  (the baseline's ladder)
from ..prompt.healing import healed_text

if TYPE_CHECKING:
    from ..engine.engine import Engine


class AutoregressiveDecoder(Protocol):
    def __call__(self, engine: Engine, prefix: str, suffix: str, max_new_tokens: int) -> tuple[str, dict[str, float]]:
        """Complete the gap between `prefix` and `suffix`; returns (text, timings_ms)."""
        ...


@dataclass
class AutoregressiveResult:
    text: str
    token_ids: list[int]  # generated, stop token excluded
    stopped: bool  # a stop token ended it (rather than max_new_tokens)
    prompt_tokens: int
    # tokenize, encode (the prompt), decode (every generated token), per_token, total
    timings_ms: dict[str, float] = field(default_factory=dict)


def generate_autoregressive(engine: Engine, prefix: str, suffix: str, max_new_tokens: int) -> AutoregressiveResult:
    start = time.perf_counter()
    # The engine's own prompt builder and token healing, so both decodings see the same prompt.
    healed_prompt, healing = engine.healed(engine.prompts.build(prefix, suffix))
    prompt = list(healed_prompt.ids)
    generated, _, stopped, (t0, t1, t2) = greedy_tokens(engine, prompt, max_new_tokens,
                                                        first_allowed=engine.first_token_mask(healing))
    text = engine.prompts.decode(generated, healed_text(healing))
    timings = {
        "tokenize": (t0 - start) * 1e3,
        "encode": (t1 - t0) * 1e3,
        "decode": (t2 - t1) * 1e3,
        "per_token": (t2 - t1) * 1e3 / max(1, len(generated)),
        "total": (time.perf_counter() - start) * 1e3,
    }
    return AutoregressiveResult(text, generated, stopped, len(prompt), timings)


class AutoregressiveEngine:
    """Greedy left-to-right decoding of an `Engine`'s weights behind the engine interface the
    server uses: the same prompts, stop tokens and budget (one canvas of tokens), so a benchmark
    can compare the two decodings through the server's own request path. Candidates are all the
    same greedy row; there is no prompt cache (each request encodes its prompt). A one-line
    request ends after its first line break, as a left-to-right completer stops there."""

    takes_drafts = False

    def __init__(self, engine: Engine):
        self.engine = engine
        self.prompts = engine.prompts
        self.prompt_cache = engine.prompt_cache
        self.identity = f"{engine.identity}|autoregressive"

    @property
    def context_tokens(self) -> int:
        return self.engine.context_tokens

    def generate(self, prompt, *, canvas_length: int | None = None, max_new_tokens: int | None = None,
                 max_steps: int | None = None, candidates: int = 1, seed: int | None = None, cancel=None,
                 one_line: bool = False):
        from ..engine.engine import Generation

        start = time.perf_counter()
        budget = max_new_tokens or canvas_length or self.engine.defaults.canvas_length
        prompt, healing = self.engine.healed(prompt)
        tokens, probabilities, _, (t0, t1, t2) = greedy_tokens(self.engine, list(prompt.ids), budget, cancel,
                                                               self.engine.first_token_mask(healing),
                                                               self.engine.line_break_ids if one_line else ())
        timings = {"encode": (t1 - t0) * 1e3, "decode": (t2 - t1) * 1e3,
                   "per_token": (t2 - t1) * 1e3 / max(1, len(tokens)), "total": (time.perf_counter() - start) * 1e3}
        return Generation([tokens] * candidates, len(tokens), 1, len(prompt), len(prompt), timings,
                          [probabilities] * candidates, healed_text(healing))


def decode_autoregressive(engine: Engine, prefix: str, suffix: str, max_new_tokens: int) -> tuple[str, dict[str, float]]:
    """Greedy decoding through the causal encoder (an `AutoregressiveDecoder`)."""
    result = generate_autoregressive(engine, prefix, suffix, max_new_tokens)
    return result.text, result.timings_ms
