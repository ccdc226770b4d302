"""The engine: text in, completion out, with the model resident and its prompt cache warm.

It is the one place that touches the device: it turns an infill request into prompt
tokens (`prompt_format`), reuses the encoder KV of earlier prompts (`prompt_cache`), runs
block diffusion (`sampler`) with a seeded generator, and decodes the tokens to text.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..errors import InputError, ModelLoadError
from ..model.loader import LoadedModel, load_model
from ..model.quantize import quantize_loaded_model
from .cuda_graph import GraphedDenoiser
from .prompt_cache import PromptCache
from .prompt_format import PromptFormat, prompt_format_for, trained_context_tokens
from .sampler import DenoiseSettings, generate

MIN_CANVAS, MAX_CANVAS = 16, 256
DRAFT_LOGIT = 8.0  # how strongly a rewrite's self-conditioning prior favours the selected text


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    nfe: int  # decoder forward passes
    canvases: int
    prompt_tokens: int
    encoded_tokens: int  # prompt tokens that were not in the prompt cache
    timings_ms: dict[str, float] = field(default_factory=dict)
    candidates: list[str] = field(default_factory=list)  # every row's text; `text` is the first

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "nfe": self.nfe,
            "canvases": self.canvases,
            "prompt_tokens": self.prompt_tokens,
            "encoded_tokens": self.encoded_tokens,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


class Engine:
    def __init__(self, loaded: LoadedModel, cache_entries: int = 4, context_tokens: int = 2048):
        if loaded.tokenizer is None:
            raise ModelLoadError(f"{loaded.directory} has no tokenizer.json")
        if context_tokens < 64:
            raise InputError(f"the context budget must be at least 64 tokens, got {context_tokens}")
        self.loaded = loaded
        self.model = loaded.model
        # A model trained on shorter prompts than the budget gets its own length: positions
        # it never saw make its attention worse, not better informed.
        self.trained_context_tokens = trained_context_tokens(loaded.directory)
        self.context_tokens = min(context_tokens, self.trained_context_tokens or context_tokens)
        self.prompt_format: PromptFormat = prompt_format_for(
            loaded.tokenizer, loaded.directory, loaded.sampler_defaults.eos_token_ids,
            loaded.config.bos_token_id, loaded.tokenizer_config,
        )
        self.prompt_cache = PromptCache(self.model, max_entries=cache_entries)
        # On CUDA the decoder forward of each denoising step replays a CUDA graph (DG_LSP_CUDA_GRAPHS=0: eager).
        self.denoiser = GraphedDenoiser(
            self.model, enabled=loaded.device.type == "cuda" and os.environ.get("DG_LSP_CUDA_GRAPHS", "1") != "0"
        )
        defaults = loaded.sampler_defaults
        self.defaults = DenoiseSettings(
            canvas_length=min(MAX_CANVAS, max(MIN_CANVAS, loaded.config.canvas_length)),
            max_denoising_steps=defaults.max_denoising_steps,
            t_max=defaults.t_max,
            t_min=defaults.t_min,
            entropy_bound=defaults.entropy_bound,
            stability_threshold=defaults.stability_threshold,
            confidence_threshold=defaults.confidence_threshold,
            stop_token_ids=self.prompt_format.stop_token_ids,
            pad_token_id=defaults.pad_token_id if defaults.pad_token_id is not None else 0,
        )
        self._lock = threading.Lock()  # one generation at a time: they share the prompt cache

    @classmethod
    def from_directory(cls, directory: str | Path, device: str = "cpu", dtype: torch.dtype | None = None,
                       progress: bool = True, quantization: str = "none", **kwargs) -> Engine:
        """`quantization` (int8, int4, fp8) quantizes a checkpoint stored unquantized as it
        loads; a checkpoint written by `dg-lsp quantize` keeps its own format."""
        loaded = load_model(directory, device=device, dtype=dtype, progress=progress)
        if quantization != "none" and loaded.quantization is None:
            quantize_loaded_model(loaded.model, quantization)
            loaded = replace(loaded, quantization=quantization)
        return cls(loaded, **kwargs)

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    def infill(
        self,
        prefix: str,
        suffix: str = "",
        *,
        context: str = "",
        canvas_length: int | None = None,
        max_new_tokens: int | None = None,
        max_steps: int | None = None,
        candidates: int = 1,
        seed: int | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> Completion:
        """Fill the gap between `prefix` and `suffix`. Raises `Cancelled` if `cancel()` turns true.
        `candidates` > 1 denoises that many canvases in one batch (a single canvas each)."""
        settings = self._settings(canvas_length, max_new_tokens, max_steps)
        if candidates < 1 or (candidates > 1 and settings.num_canvases > 1):
            raise InputError("several candidates need a single canvas (max_new_tokens <= canvas length)")
        start = time.perf_counter()
        prompt = self.prompt_format.build(*self._fit_context(prefix, suffix), context)
        return self._run(prompt, settings, seed, cancel, start, batch=candidates)

    def rewrite(
        self,
        prefix: str,
        selection: str,
        suffix: str,
        *,
        strength: float = 0.5,
        max_steps: int | None = None,
        seed: int | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> Completion:
        """Rewrite `selection` in place: the canvas starts from the selection's tokens, a `strength`
        share of them re-noised, with the selection as the self-conditioning prior, and is
        denoised with the surrounding code as context."""
        if not 0.0 <= strength <= 1.0:
            raise InputError(f"rewrite strength must be between 0 and 1, got {strength}")
        draft = self.prompt_format.encode(selection)
        stop = self.defaults.stop_token_ids[0] if self.defaults.stop_token_ids else None
        needed = len(draft) + 1
        if needed > MAX_CANVAS:
            raise InputError(f"the selection is {len(draft)} tokens; at most {MAX_CANVAS - 1} can be rewritten at once")
        # Room to grow by a quarter, in multiples of 16 tokens.
        canvas = min(MAX_CANVAS, max(MIN_CANVAS, -(-int(needed * 1.25) // 16) * 16))
        settings = self._settings(canvas, canvas, max_steps)
        start = time.perf_counter()
        prompt = self.prompt_format.build(*self._fit_context(prefix, suffix))
        seed = seed if seed is not None else int(torch.randint(0, 2**62, (1,)))
        generator = torch.Generator().manual_seed(seed)  # the draft is made on the CPU
        vocab = self.model.config.vocab_size
        tokens = torch.randint(0, vocab, (1, canvas), generator=generator)
        ids = torch.tensor(draft + ([stop] if stop is not None else []), dtype=torch.long)
        tokens[0, : len(ids)] = ids
        noised = torch.rand(len(ids), generator=generator) < strength
        tokens[0, : len(ids)][noised] = torch.randint(0, vocab, (int(noised.sum()),), generator=generator)
        # Self-conditioning prior: the unnoised draft, as confident logits (the rest uniform).
        prior = torch.zeros(1, canvas, vocab)
        prior[0, torch.arange(len(ids)), ids] = DRAFT_LOGIT
        return self._run(prompt, settings, seed, cancel, start, initial_canvas=tokens, initial_self_cond=prior)

    def _run(self, prompt, settings, seed, cancel, start, batch=1, **initial) -> Completion:
        generator = self._generator(seed)
        initial = {k: v.to(self.device, v.dtype if k == "initial_canvas" else self.loaded.dtype)
                   for k, v in initial.items()}
        with self._lock:
            t0 = self._now()
            cache, encoded = self.prompt_cache.prepare(prompt, cancel)
            t1 = self._now()
            result = generate(self.denoiser, cache, settings, generator, cancel, batch_size=batch, **initial)
            t2 = self._now()
        stops = set(settings.stop_token_ids)
        rows = []
        for row in result.tokens.tolist():
            end = next((i for i, t in enumerate(row) if t in stops), len(row))
            rows.append(row[:end])
        timings = {
            "tokenize": (t0 - start) * 1e3,
            "encode": (t1 - t0) * 1e3,
            "denoise": (t2 - t1) * 1e3,
            "per_step": (t2 - t1) * 1e3 / max(1, result.nfe),
            "total": (time.perf_counter() - start) * 1e3,
        }
        texts = [self.prompt_format.decode(row) for row in rows]
        return Completion(texts[0], rows[0], result.nfe, len(result.steps), len(prompt), encoded, timings, texts)

    def _generator(self, seed: int | None) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, (1,))))
        return generator

    def _settings(self, canvas_length, max_new_tokens, max_steps) -> DenoiseSettings:
        canvas = canvas_length or self.defaults.canvas_length
        if not MIN_CANVAS <= canvas <= MAX_CANVAS:
            raise InputError(f"canvas length must be between {MIN_CANVAS} and {MAX_CANVAS} tokens, got {canvas}")
        if max_steps is not None and max_steps < 1:
            raise InputError(f"the number of denoising steps must be at least 1, got {max_steps}")
        if max_new_tokens is not None and max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        return replace(
            self.defaults,
            canvas_length=canvas,
            max_new_tokens=max_new_tokens or canvas,
            max_denoising_steps=max_steps or self.defaults.max_denoising_steps,
        )

    def _fit_context(self, prefix: str, suffix: str) -> tuple[str, str]:
        """Keep the end of the prefix and the start of the suffix within the token budget
        (three quarters to the prefix). Characters are cut first, so a huge file is never
        tokenized whole."""
        prefix_budget = self.context_tokens * 3 // 4
        suffix_budget = self.context_tokens - prefix_budget
        prefix = _keep_tokens(self.prompt_format, prefix[-prefix_budget * 8 :], prefix_budget, from_end=True)
        suffix = _keep_tokens(self.prompt_format, suffix[: suffix_budget * 8], suffix_budget, from_end=False)
        return prefix, suffix

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()


def _keep_tokens(fmt: PromptFormat, text: str, budget: int, from_end: bool) -> str:
    encoding = fmt.tokenizer.encode(text, add_special_tokens=False)
    if len(encoding.ids) <= budget:
        return text
    # Cut at a token boundary, using the tokenizer's character offsets.
    if from_end:
        return text[encoding.offsets[-budget][0] :]
    return text[: encoding.offsets[budget - 1][1]]
