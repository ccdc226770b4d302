"""The engine for Dream-family checkpoints, with the interface the server uses on `Engine`.

`Engine.from_directory` returns one of these when the loader says the directory holds a
Dream-family model (Dream, Dream-Coder, DiffuCoder, DreamOn, Open-dCoder). The server and
the commands see the same attributes: `identity`, `prompts` (`build`, `count`, `encode`,
`decode`), `generate`, `redraw`, `infill`, `rewrite`, `context_tokens` and `prompt_cache`.

What differs is underneath: the gap is filled in place (`dream_sampler`); `canvas_length`
is the length of the gap (DreamOn checkpoints then grow or shrink it); a rewrite re-masks a
`strength` share of the selection's own tokens where they stand, which masked diffusion
does natively; and the "prompt cache" is the exact first-step memo (`dream_cache`), which with
`reuse_prompt_kv` also lends a keystroke the keys of the prompt start it shares (approximate).

Decoding settings come from the checkpoint's generation_config.json (`alg`, `temperature`,
`top_p`, `alg_temp`, as Dream publishes them), then from `dg_lsp.json` `{"decoding": {...}}`
(any `DreamDecoding` field but `steps`), then from the `decoding` argument.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

import torch

from ..errors import InputError, ModelLoadError
from ..prompt import Prompt
from ..prompt.format import _read_options, trained_context_tokens
from .dream_cache import FirstStepMemo, SpanForward
from .dream_prompt import DreamPromptBuilder, dream_prompt_format, split_at_gap
from .dream_sampler import DreamDecoding, SpecialTokens, infill
from .engine import Generation, LocalEngine, _load_serial, cut_rows_at_stops

MAX_CANVAS = 256  # the longest gap one request asks for (as for DiffusionGemma)
DEFAULT_CANVAS = 32
DEFAULT_STEPS = 32
# Dream's published sampling (Dream-Coder demos: entropy, temperature 0.1-0.4, top-p 0.9-0.95), and
# Fast-dLLM's parallel decoding threshold (no accuracy loss reported at 0.9). Caches stay off.
DEFAULT_DECODING = DreamDecoding(steps=DEFAULT_STEPS, alg="entropy", temperature=0.2, top_p=0.95, threshold=0.9)
_GENERATION_KEYS = ("alg", "temperature", "top_p", "alg_temp")
_NOT_CONFIGURABLE = ("steps", "variable_length")  # the request's budget; the checkpoint's own kind


class DreamEngine(LocalEngine):
    family = "dream"
    takes_drafts = False  # prompt-lookup drafts seed DiffusionGemma's canvas; not offered here

    def __init__(self, loaded, cache_entries: int = 2, context_tokens: int = 2048,
                 decoding: dict[str, Any] | None = None, first_step_memo: bool = True):
        if loaded.tokenizer is None:
            raise ModelLoadError(f"{loaded.directory} has no tokenizer.json")
        if context_tokens < 64:
            raise InputError(f"the context budget must be at least 64 tokens, got {context_tokens}")
        self.loaded = loaded
        self.model = loaded.model
        cfg = loaded.config
        self.special = SpecialTokens(cfg.mask_token_id, cfg.eos_token_id, cfg.expand_token_id)
        self.decoding = self._decoding(loaded, decoding or {})
        # Room for the longest gap (and DreamOn's growth) within the model's positions.
        self.max_sequence = cfg.max_position_embeddings
        room = cfg.max_position_embeddings - MAX_CANVAS - (self.decoding.max_grow if cfg.variable_length else 0)
        if room < 64:
            raise ModelLoadError(f"{loaded.directory}: {cfg.max_position_embeddings} positions leave no room for "
                                 f"a prompt beside a {MAX_CANVAS}-token gap")
        self.trained_context_tokens = trained_context_tokens(loaded.directory)
        budget = min(context_tokens, self.trained_context_tokens or context_tokens, room)
        self.prompt_format = dream_prompt_format(loaded.tokenizer, cfg.bos_token_id, cfg.eos_token_id)
        self.prompts = DreamPromptBuilder(self.prompt_format, budget, cfg.eos_token_id)
        self.prompt_cache = FirstStepMemo(max_entries=cache_entries if first_step_memo else 0)
        self.identity = (f"{loaded.directory}|{loaded.quantization or 'none'}|{loaded.device}|"
                         f"{self.context_tokens}|dream|{next(_load_serial)}")
        self._lock = threading.Lock()  # one generation at a time: they share the memo

    @classmethod
    def from_loaded(cls, loaded, quantization: str = "none", **kwargs) -> DreamEngine:
        """`quantization` (int8, int4, fp8) quantizes a checkpoint stored unquantized as it loads."""
        if quantization != "none" and loaded.quantization is None:
            from ..model.quantize import quantize_loaded_model

            quantize_loaded_model(loaded.model, quantization)
            loaded = replace(loaded, quantization=quantization)
        return cls(loaded, **kwargs)

    @staticmethod
    def _decoding(loaded, overrides: dict[str, Any]) -> DreamDecoding:
        allowed = {f.name for f in fields(DreamDecoding)} - set(_NOT_CONFIGURABLE)
        published = {k: loaded.generation[k] for k in _GENERATION_KEYS if loaded.generation.get(k) is not None}
        options = _read_options(loaded.directory).get("decoding") or {}
        if not isinstance(options, dict):
            raise ModelLoadError(f"{loaded.directory / 'dg_lsp.json'}: decoding must be an object")
        chosen = {**published, **options, **overrides}
        unknown = sorted(set(chosen) - allowed)
        if unknown:
            raise ModelLoadError(f"unknown decoding settings {unknown}; expected some of {sorted(allowed)}")
        try:
            return replace(DEFAULT_DECODING, **chosen, variable_length=loaded.config.variable_length).validate()
        except (TypeError, ValueError) as err:
            raise ModelLoadError(f"{loaded.directory}: bad decoding settings: {err}") from None

    def generate(
        self,
        prompt: Prompt,
        *,
        canvas_length: int | None = None,
        max_new_tokens: int | None = None,
        max_steps: int | None = None,
        candidates: int = 1,
        seed: int | None = None,
        cancel: Callable[[], bool] | None = None,
        one_line: bool = False,
    ) -> Generation:
        """Fill the gap of `prompt` with `canvas_length` masks (or `max_new_tokens`, the gap
        being the only canvas). Raises `Cancelled` if `cancel()` turns true. `one_line` (the
        server shows one line) changes nothing: the gap is denoised in parallel."""
        length = max_new_tokens or canvas_length or DEFAULT_CANVAS
        if not 1 <= length <= MAX_CANVAS:
            raise InputError(f"the gap must be between 1 and {MAX_CANVAS} tokens, got {length}")
        if candidates < 1:
            raise InputError(f"candidates must be at least 1, got {candidates}")
        gap = torch.full((candidates, length), self.special.mask, dtype=torch.long)
        return self._run(prompt, gap, max_steps, seed, cancel)

    def redraw(
        self,
        prompt: Prompt,
        draft: list[int],
        *,
        strength: float = 0.5,
        max_steps: int | None = None,
        seed: int | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> Generation:
        """Rewrite `draft` (token ids) in place: a `strength` share of its tokens (at least
        one) is masked again where it stands and decoded with `prompt` around it."""
        if not 0.0 <= strength <= 1.0:
            raise InputError(f"rewrite strength must be between 0 and 1, got {strength}")
        if not draft:
            raise InputError("there is nothing to rewrite")
        if len(draft) > MAX_CANVAS:
            raise InputError(f"the selection is {len(draft)} tokens; at most {MAX_CANVAS} can be rewritten at once")
        seed = seed if seed is not None else int(torch.randint(0, 2**62, (1,)))
        chooser = torch.Generator().manual_seed(seed)  # which tokens: drawn on the CPU, like the draft
        count = max(1, round(strength * len(draft)))
        masked = torch.randperm(len(draft), generator=chooser)[:count]
        gap = torch.tensor([draft], dtype=torch.long)
        gap[0, masked] = self.special.mask
        return self._run(prompt, gap, max_steps, seed, cancel)

    # -- the run ------------------------------------------------------------------------------

    def _run(self, prompt: Prompt, gap: torch.Tensor, max_steps, seed, cancel) -> Generation:
        if max_steps is not None and max_steps < 1:
            raise InputError(f"the number of denoising steps must be at least 1, got {max_steps}")
        before, after = split_at_gap(prompt)
        if len(before) + len(after) + gap.shape[1] > self.max_sequence:
            raise InputError(f"the prompt and gap ({len(prompt)} + {gap.shape[1]} tokens) exceed the model's "
                             f"{self.max_sequence} positions")
        settings = replace(self.decoding, steps=max_steps or self.decoding.steps)
        start = time.perf_counter()
        generator = self._generator(seed)
        # A gap that changes length is decoded one candidate at a time.
        batches = list(gap.split(1)) if settings.variable_length else [gap]
        rows, confidences, nfe, encoded = [], [], 0, 0
        with self._lock:
            t0 = self._now()
            for batch in batches:
                forward = SpanForward(self.model, settings.dual_cache, settings.refresh_every,
                                      self.prompt_cache if self.prompt_cache.max_entries else None,
                                      key=prompt.cache_key, reuse_prompt_kv=settings.reuse_prompt_kv)
                result = infill(forward, before, after, batch, settings, self.special, generator, cancel,
                                max_length=self.max_sequence)
                rows += result.tokens
                confidences += result.confidence
                nfe += result.nfe
                encoded += forward.full_forwards * len(prompt) - forward.reused_positions
            t1 = self._now()
        self.prompt_cache.tokens_encoded += encoded
        stops = set(self.prompt_format.stop_token_ids) | {self.special.mask}
        cut_rows, cut_confidences = cut_rows_at_stops(rows, confidences, stops)
        timings = {"encode": 0.0, "denoise": (t1 - t0) * 1e3, "per_step": (t1 - t0) * 1e3 / max(1, nfe),
                   "total": (time.perf_counter() - start) * 1e3}
        return Generation(cut_rows, nfe, 1, len(prompt), encoded, timings, cut_confidences)
