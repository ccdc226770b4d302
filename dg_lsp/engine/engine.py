"""The engine: prompt token ids in, token rows out, with the model resident and its prompt
cache warm.

It is the one place that touches the device: it reuses the encoder KV of each document's
earlier prompts (`prompt_cache`), runs block diffusion (`sampler`) with a seeded generator,
and gives each written token its causal-encoder probability (`verify`), which the server's
confidence gate reads. Prompts are built, and rows decoded, by `dg_lsp.prompt` (`engine.prompts`);
`infill` and `rewrite` are the text-in, text-out conveniences over the same builder.
"""

from __future__ import annotations

import functools
import itertools
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
from ..prompt import (Prompt, PromptBuilder, PromptFormat, heals_tokens, prompt_format_for, trained_context_tokens,
                      trained_with_cross_file_context)
from ..prompt.decode import line_break_ids
from ..prompt.healing import Healing, TokenHealer, healed_text
from .cuda_graph import GraphedDenoiser
from .prompt_cache import PromptCache
from .sampler import DenoiseSettings, generate
from .verify import encoder_probabilities

MIN_CANVAS, MAX_CANVAS = 16, 256
# A block request's greedy seed ends after this many lines: each costs a token's encoder pass
# per token, and the denoiser writes the canvas after the seed in parallel anyway.
BLOCK_SEED_LINES = 3
DRAFT_LOGIT = 8.0  # how strongly a rewrite's self-conditioning prior favours the selected text
_load_serial = itertools.count(1)


@dataclass
class Generation:
    """What the model wrote for one prompt: a row of token ids per candidate."""

    rows: list[list[int]]  # stop token and what follows it removed
    nfe: int  # decoder forward passes
    canvases: int
    prompt_tokens: int
    encoded_tokens: int  # prompt tokens that were not in the prompt cache
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Per row: each token's probability. The engine's are the causal encoder's (`verify`): the
    # product over a prefix is the model's probability that the prefix is right.
    confidences: list[list[float]] = field(default_factory=list)
    # The text of the healed token every row starts with (`dg_lsp.prompt.healing`); it is before
    # the cursor already, so decoding drops it: `prompts.decode(row, generation.healed)`.
    healed: str = ""


@dataclass(frozen=True)
class _Seeding:
    """What starts the first row's canvas: `draft` token ids (a `strength` share of them
    re-noised), or the encoder's greedy continuation (ended after its first line break for
    `one_line`, after `BLOCK_SEED_LINES` otherwise)."""

    draft: list[int] | None = None
    strength: float = 0.0
    greedy: bool = False
    one_line: bool = False


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

    @classmethod
    def decoded(cls, generation: Generation, prompts: PromptBuilder, tokenize_ms: float = 0.0) -> Completion:
        texts = [prompts.decode(row, generation.healed) for row in generation.rows]
        timings = {"tokenize": tokenize_ms, **generation.timings_ms}
        timings["total"] = timings.get("total", 0.0) + tokenize_ms
        return cls(texts[0], generation.rows[0], generation.nfe, generation.canvases, generation.prompt_tokens,
                   generation.encoded_tokens, timings, texts)

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "nfe": self.nfe,
            "canvases": self.canvases,
            "prompt_tokens": self.prompt_tokens,
            "encoded_tokens": self.encoded_tokens,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


def device_clock(device: torch.device) -> float:
    """`time.perf_counter()` once the device's queued work is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def cut_rows_at_stops(rows: list[list[int]], confidences: list[list[float]],
                      stops: set[int]) -> tuple[list[list[int]], list[list[float]]]:
    """Each row (and its confidences) up to its first stop token."""
    cut_rows, cut_confidences = [], []
    for row, confidence in zip(rows, confidences):
        end = next((i for i, t in enumerate(row) if t in stops), len(row))
        cut_rows.append(row[:end])
        cut_confidences.append(confidence[:end])
    return cut_rows, cut_confidences


class LocalEngine:
    """What the engines that run a model in this process share (`Engine`, `DreamEngine`): the
    prompt budget, the device, the clock, the seeded generator, and the text-in, text-out
    conveniences over their own `generate` and `redraw`. Subclasses set `loaded` and `prompts`."""

    @property
    def context_tokens(self) -> int:
        """The prompt budget: the setting, cut to the prompt length the model was trained on."""
        return self.prompts.budget

    @context_tokens.setter
    def context_tokens(self, tokens: int) -> None:  # benchmarks that measure cost, not quality
        self.prompts.budget = tokens

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    def infill(self, prefix: str, suffix: str = "", *, context: str = "", key: str = "", **options) -> Completion:
        """Text in, text out: `generate` over the builder's prompt for `prefix`/`suffix`."""
        start = time.perf_counter()
        prompt = self.prompts.build(prefix, suffix, context, key)
        tokenize_ms = (time.perf_counter() - start) * 1e3
        return Completion.decoded(self.generate(prompt, **options), self.prompts, tokenize_ms)

    def rewrite(self, prefix: str, selection: str, suffix: str, *, key: str = "", **options) -> Completion:
        """Text in, text out: `redraw` of `selection` between `prefix` and `suffix`."""
        start = time.perf_counter()
        prompt = self.prompts.build(prefix, suffix, key=key)
        draft = self.prompts.encode(selection)
        tokenize_ms = (time.perf_counter() - start) * 1e3
        return Completion.decoded(self.redraw(prompt, draft, **options), self.prompts, tokenize_ms)

    def _generator(self, seed: int | None) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, (1,))))
        return generator

    def _now(self) -> float:
        return device_clock(self.device)


class Engine(LocalEngine):
    takes_drafts = True  # `generate(draft=...)` seeds the canvas (prompt-lookup drafts)
    seeds_with_greedy = True  # `generate(greedy_seed=True)`: the encoder's greedy continuation seeds it

    def __init__(self, loaded: LoadedModel, cache_entries: int = 8, context_tokens: int = 2048):
        if loaded.tokenizer is None:
            raise ModelLoadError(f"{loaded.directory} has no tokenizer.json")
        if context_tokens < 64:
            raise InputError(f"the context budget must be at least 64 tokens, got {context_tokens}")
        self.loaded = loaded
        self.model = loaded.model
        # A model trained on shorter prompts than the budget gets its own length: positions
        # it never saw make its attention worse, not better informed.
        self.trained_context_tokens = trained_context_tokens(loaded.directory)
        # Snippets of other open files go before the prompt only for a model trained with them.
        self.cross_file_context = trained_with_cross_file_context(loaded.directory)
        self.prompt_format: PromptFormat = prompt_format_for(
            loaded.tokenizer, loaded.directory, loaded.sampler_defaults.eos_token_ids,
            loaded.config.bos_token_id, loaded.tokenizer_config,
        )
        self.prompts = PromptBuilder(self.prompt_format, min(context_tokens, self.trained_context_tokens or context_tokens))
        self.prompt_cache = PromptCache(self.model, max_entries=cache_entries)
        # Names this load: a completion cached for another model (or another load) is never served.
        self.identity = (f"{loaded.directory}|{loaded.quantization or 'none'}|{loaded.device}|"
                         f"{self.context_tokens}|{next(_load_serial)}")
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
        # Each row's confidences come from one causal-encoder pass over it (`verify`); False: the
        # final denoising step's own probabilities (benchmarks compare the two).
        self.verify_with_encoder = True
        # The prompt's last prefix token is rewritten rather than continued (`dg_lsp.prompt.healing`).
        self.healer = TokenHealer(loaded.tokenizer)
        self.heal_tokens = heals_tokens(loaded.directory)
        self._healing_masks: dict[tuple[int, ...], torch.Tensor] = {}
        self._lock = threading.Lock()  # one generation at a time: they share the prompt cache

    @classmethod
    def from_directory(cls, directory: str | Path, device: str = "cpu", dtype: torch.dtype | None = None,
                       progress: bool = True, quantization: str = "none", **kwargs) -> Engine:
        """`quantization` (int8, int4, fp8) quantizes a checkpoint stored unquantized as it
        loads; a checkpoint written by `dg-lsp quantize` keeps its own format. A Dream-family
        directory gets a `dream_engine.DreamEngine`, which has the same interface."""
        loaded = load_model(directory, device=device, dtype=dtype, progress=progress)
        if loaded.family == "dream":  # Dream, Dream-Coder, DiffuCoder, DreamOn, Open-dCoder: their own engine
            from .dream_engine import DreamEngine

            return DreamEngine.from_loaded(loaded, quantization=quantization, **kwargs)
        if quantization != "none" and loaded.quantization is None:
            quantize_loaded_model(loaded.model, quantization)
            loaded = replace(loaded, quantization=quantization)
        return cls(loaded, **kwargs)

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
        draft: str | None = None,
        greedy_seed: bool = False,
        one_line: bool = False,
    ) -> Generation:
        """Fill the gap `prompt` describes. Raises `Cancelled` if `cancel()` turns true.
        `candidates` > 1 denoises that many canvases in one batch (a single canvas each).
        A `draft` (the text after the cursor, e.g. a prompt-lookup continuation) seeds the start of the first
        candidate's canvas and its self-conditioning prior; the model keeps what it agrees with.
        `greedy_seed` (without a draft): the causal encoder's greedy continuation of the prompt is
        the draft (`engine.greedy`), decoded from the prompt cache's entry; `one_line` (the
        server shows one line of what it writes) ends that seed after its first line break, a
        block's after `BLOCK_SEED_LINES` (the canvas itself is denoised in parallel, so a longer
        seed gains little and costs an encoder pass a token). A small model's encoder
        writes better whole lines than its denoiser does from noise, and the denoiser still
        revises them (an invoked request)."""
        settings = self._settings(canvas_length, max_new_tokens, max_steps)
        if candidates < 1 or (candidates > 1 and settings.num_canvases > 1):
            raise InputError("several candidates need a single canvas (max_new_tokens <= canvas length)")
        prompt, healing = self.healed(prompt)
        # The draft continues the cursor, so with a healed prompt it starts with the healed text too.
        draft_ids = self.prompts.encode(healed_text(healing) + draft)[: settings.canvas_length - 1] if draft else None
        greedy = not draft_ids and greedy_seed and settings.num_canvases == 1
        if draft_ids or greedy:  # the seeded canvas and the sampler draw from one seed
            seed = seed if seed is not None else int(torch.randint(0, 2**62, (1,)))
        seeding = _Seeding(draft_ids, greedy=greedy, one_line=one_line)
        return self._run(prompt, settings, seed, cancel, batch=candidates, healing=healing, seeding=seeding)

    def healed(self, prompt: Prompt) -> tuple[Prompt, Healing | None]:
        """The prompt to encode and the healing of its last prefix token (None: not healed)."""
        healed = self.healer.heal(prompt) if self.heal_tokens else None
        return healed if healed is not None else (prompt, None)

    def first_token_mask(self, healing: Healing | None) -> torch.Tensor | None:
        """bool [V] on the device: the tokens a row may start with (None: any)."""
        if healing is None:
            return None
        mask = self._healing_masks.get(healing.allowed)
        if mask is None:
            if len(self._healing_masks) >= 64:
                self._healing_masks.clear()
            mask = torch.zeros(self.model.config.vocab_size, dtype=torch.bool, device=self.device)
            mask[list(healing.allowed)] = True
            self._healing_masks[healing.allowed] = mask
        return mask

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
        """Rewrite `draft` (token ids) in place: the canvas starts from the draft, a `strength`
        share of it re-noised, with the draft as the self-conditioning prior, and is denoised
        with `prompt` (the surrounding code) as context."""
        if not 0.0 <= strength <= 1.0:
            raise InputError(f"rewrite strength must be between 0 and 1, got {strength}")
        stop = self.defaults.stop_token_ids[0] if self.defaults.stop_token_ids else None
        needed = len(draft) + 1
        if needed > MAX_CANVAS:
            raise InputError(f"the selection is {len(draft)} tokens; at most {MAX_CANVAS - 1} can be rewritten at once")
        # Room to grow by a quarter, in multiples of 16 tokens.
        canvas = min(MAX_CANVAS, max(MIN_CANVAS, -(-int(needed * 1.25) // 16) * 16))
        settings = self._settings(canvas, canvas, max_steps)
        seed = seed if seed is not None else int(torch.randint(0, 2**62, (1,)))
        seeding = _Seeding(draft + ([stop] if stop is not None else []), strength)
        return self._run(prompt, settings, seed, cancel, seeding=seeding)

    def _seeded_canvas(self, ids: list[int], canvas: int, rows: int, strength: float,
                       seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A starting canvas [rows, canvas] whose first row begins with `ids` (a `strength` share
        of them re-noised; the rest random), and the self-conditioning prior: the unnoised ids as
        confident logits, uniform elsewhere. Made on the CPU, from its own seeded generator."""
        generator = torch.Generator().manual_seed(seed)
        vocab = self.model.config.vocab_size
        tokens = torch.randint(0, vocab, (rows, canvas), generator=generator)
        ids_t = torch.tensor(ids, dtype=torch.long)
        tokens[0, : len(ids_t)] = ids_t
        noised = torch.rand(len(ids_t), generator=generator) < strength
        tokens[0, : len(ids_t)][noised] = torch.randint(0, vocab, (int(noised.sum()),), generator=generator)
        prior = torch.zeros(rows, canvas, vocab)
        prior[0, torch.arange(len(ids_t)), ids_t] = DRAFT_LOGIT
        return tokens, prior

    def _run(self, prompt: Prompt, settings, seed, cancel, batch=1, healing: Healing | None = None,
             seeding: _Seeding = _Seeding()) -> Generation:
        start = time.perf_counter()
        generator = self._generator(seed)
        first_allowed = self.first_token_mask(healing)
        with self._lock:
            t0 = self._now()
            cache, encoded = self.prompt_cache.prepare(prompt.ids, cancel, key=prompt.cache_key)
            t1 = self._now()
            draft = seeding.draft
            if seeding.greedy:  # continues the prompt just prepared: no second encode
                from .greedy import continue_greedily  # greedy imports this module

                draft, _ = continue_greedily(self.model, cache, prompt.ids, max(1, settings.canvas_length - 1),
                                             settings.stop_token_ids, cancel, first_allowed,
                                             self.line_break_ids, 1 if seeding.one_line else BLOCK_SEED_LINES)
            initial = {}
            if draft:
                tokens, prior = self._seeded_canvas(draft, settings.canvas_length, batch, seeding.strength, seed)
                initial = {"initial_canvas": tokens.to(self.device),
                           "initial_self_cond": prior.to(self.device, self.loaded.dtype)}
            t_seeded = self._now()
            result = generate(self.denoiser, cache, settings, generator, cancel, batch_size=batch,
                              first_allowed=first_allowed, **initial)
            t2 = self._now()
            rows, confidences = cut_rows_at_stops(result.tokens.tolist(), result.confidence.tolist(),
                                                  set(settings.stop_token_ids))
            if self.verify_with_encoder:
                confidences = encoder_probabilities(self.model, cache, prompt.ids, rows, cancel, first_allowed)
            t3 = self._now()
        timings = {
            "encode": (t1 - t0) * 1e3,
            "seed": (t_seeded - t1) * 1e3,
            "denoise": (t2 - t_seeded) * 1e3,
            "per_step": (t2 - t_seeded) * 1e3 / max(1, result.nfe),
            "verify": (t3 - t2) * 1e3,
            "total": (time.perf_counter() - start) * 1e3,
        }
        return Generation(rows, result.nfe, len(result.steps), len(prompt), encoded, timings, confidences,
                          healed_text(healing))

    @functools.cached_property
    def line_break_ids(self) -> frozenset[int]:
        """The tokens whose text holds a line break (the tokenizer merges one with the indentation after it)."""
        return line_break_ids(self.loaded.tokenizer)

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
