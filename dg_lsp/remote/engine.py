"""The remote engine: the local `Engine`'s interface over an OpenAI-compatible server.

The server keeps everything that happens on the user's machine (context, the span and length
decision, post-processing, the completion cache, cancellation) and calls this engine where it
would call the local one: `prompts.build/count/decode`, `generate`, `infill`, `rewrite`,
`identity`, `context_tokens`. Rows are text pieces instead of token ids (see `prompts`).

- The token budget is enforced here, before sending; `max_tokens` is the canvas the plan chose.
- Temperature 0, so one candidate (more would be the same text).
- Confidence: the token probabilities the server reports; a server that reports none (or refuses
  to: llama-cpp-python without `logits_all`) has its text shown ungated.
- A rewrite fills the gap again; an instruction prompt (diffusiongemma) also sees the old code.
- Failures go through `health`: one message per outage, requests held back during its backoff.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EngineUnavailable, ModelLoadError
from ..server.settings import RemoteSettings
from .client import HttpClient, RemoteError
from .health import Health
from .prompts import TextPrompt, TextPromptBuilder
from .protocol import Choice, cut_at_stops, parse_event, request_for
from .templates import FAMILIES, Template, from_tokenizer

log = logging.getLogger(__name__)
MIN_TOKENS, MAX_TOKENS = 16, 256  # as the local engine's canvas
_serial = itertools.count(1)


@dataclass
class RemoteGeneration:
    """What the server wrote: per candidate, text pieces and each piece's probability."""

    rows: list[list[str]]
    confidences: list[list[float]]
    prompt_tokens: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    nfe: int = 0  # no denoising steps run here
    canvases: int = 0
    encoded_tokens: int = 0
    healed: str = ""  # the prompt goes to the server as it is: no token is healed


@dataclass
class RemoteCompletion:
    text: str
    candidates: list[str]
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class SentPrompts:
    """dg/status's prompt-cache counters: here, prompt tokens sent (the server caches on its side)."""

    tokens_encoded: int = 0
    entries: tuple = ()


class RemoteEngine:
    takes_drafts = False  # a remote server takes no canvas draft

    def __init__(self, settings: RemoteSettings, context_tokens: int = 2048,
                 on_event: Callable[[str, str], None] | None = None):
        if not settings.url:
            raise ModelLoadError("dgLsp.engine is remote, but dgLsp.remote.url is empty: set it to the server's "
                                 "address, e.g. http://127.0.0.1:8000")
        self.settings = settings
        self.template, tokenizer = _template_and_tokenizer(settings)
        self.on_event = on_event or (lambda kind, message: None)
        self.prompts = TextPromptBuilder(self.template, context_tokens, tokenizer)
        self.client = HttpClient(settings.url, settings.timeoutMs / 1e3, _api_key(settings))
        self.health = Health(self._health_changed)
        self.prompt_cache = SentPrompts()
        self.logprobs = True  # asked for until a server refuses them
        self.gated: bool | None = None  # whether the last answer came with token probabilities
        self.closed = False
        self.identity = (f"remote|{settings.url}|{settings.kind}|{settings.model}|"
                         f"{self.template.name if self.template else 'server-template'}|{next(_serial)}")
        self.label = f"{settings.model} at {self.client.base_url}" if settings.model else self.client.base_url

    @property
    def context_tokens(self) -> int:
        return self.prompts.budget

    @context_tokens.setter
    def context_tokens(self, tokens: int) -> None:
        self.prompts.budget = tokens

    def generate(self, prompt: TextPrompt, *, canvas_length: int | None = None, max_new_tokens: int | None = None,
                 max_steps: int | None = None, candidates: int = 1, seed: int | None = None,
                 cancel: Callable[[], bool] | None = None, one_line: bool = False,
                 **_ignored) -> RemoteGeneration:
        """One request for the gap `prompt` describes. `max_steps` and extra candidates mean nothing to a
        server at temperature 0; `one_line` (the server shows one line) stops the server at the
        line break instead of writing the rest of the budget. Raises `Cancelled` (a newer
        request) or `EngineUnavailable`."""
        if not self.health.admit():
            raise EngineUnavailable(f"the remote server is unreachable ({self.health.last_error}); "
                                    f"trying again in {self.health.retry_in_s():.0f} s")
        max_tokens = max(1, min(MAX_TOKENS, max_new_tokens or canvas_length or 64))
        start = time.perf_counter()
        try:
            choices, first_ms = self._request(prompt, max_tokens, seed, cancel, ("\n",) if one_line else ())
        except RemoteError as err:
            self.health.failed(err.reason)
            raise EngineUnavailable(err.reason) from None
        self.health.succeeded()
        self.prompt_cache.tokens_encoded += len(prompt)
        self.gated = any(choice.probabilities for choice in choices.values())
        rows, confidences = [], []
        for index in sorted(choices):
            pieces, conf = cut_at_stops(choices[index].pieces, choices[index].confidences, self._stops)
            rows.append(pieces)
            confidences.append(conf)
        total = (time.perf_counter() - start) * 1e3
        return RemoteGeneration(rows or [[]], confidences or [[]], len(prompt), {"first_byte": first_ms, "total": total})

    def _request(self, prompt: TextPrompt, max_tokens: int, seed, cancel,
                 extra_stops: tuple[str, ...] = ()) -> tuple[dict[int, Choice], float]:
        """Send, and once more without logprobs if the server refuses them."""
        while True:
            path, body = request_for(self.settings.kind, prompt, self.template, model=self.settings.model,
                                     max_tokens=max_tokens, seed=seed, logprobs=self.logprobs,
                                     extra_stops=extra_stops)
            choices: dict[int, Choice] = {}
            start, first = time.perf_counter(), []

            def on_event(data: str) -> None:
                if not first:
                    first.append((time.perf_counter() - start) * 1e3)
                parse_event(self.settings.kind, data, choices)

            try:
                self.client.post(path, body, on_event, cancel)
                return choices, first[0] if first else 0.0
            except RemoteError as err:
                if not (self.logprobs and err.status is not None and "prob" in err.body.lower()):
                    raise
                self.logprobs = False
                self.on_event("notice", f"{self.client.base_url} does not return token probabilities ({err.body}); "
                              "completions are shown without the confidence gate")

    @property
    def _stops(self) -> tuple[str, ...]:
        return self.template.stops if self.template is not None else ()

    def infill(self, prefix: str, suffix: str = "", *, context: str = "", key: str = "",
               canvas_length: int | None = None, cancel=None, seed=None, **_ignored) -> RemoteCompletion:
        """Text in, text out (the dg.* commands)."""
        prompt = self.prompts.build(prefix, suffix, context, key)
        return self._completion(self.generate(prompt, canvas_length=canvas_length, seed=seed, cancel=cancel))

    def rewrite(self, prefix: str, selection: str, suffix: str, *, key: str = "", cancel=None, seed=None,
                **_ignored) -> RemoteCompletion:
        """The selection's gap filled again, with room for it to grow by a quarter."""
        needed = self.prompts.count_text(selection) + 1
        max_tokens = min(MAX_TOKENS, max(MIN_TOKENS, int(needed * 1.25) + 8))
        prompt = self.prompts.build(prefix, suffix, key=key, selection=selection)
        return self._completion(self.generate(prompt, max_new_tokens=max_tokens, seed=seed, cancel=cancel))

    def _completion(self, generation: RemoteGeneration) -> RemoteCompletion:
        texts = [self.prompts.decode(row) for row in generation.rows]
        return RemoteCompletion(texts[0], texts, generation.timings_ms)

    def remote_status(self) -> dict:
        """dg/status's `remote` table."""
        return {"url": self.client.base_url, "kind": self.settings.kind, "model": self.settings.model,
                "template": self.template.name if self.template else "the server's",
                "tokenCounts": "estimated" if self.prompts.estimated else "tokenizer",
                "logprobs": self.logprobs, "confidenceGate": self.gated, "requests": self.client.requests_sent,
                "aborted": self.client.requests_aborted, **self.health.to_json()}

    def close(self) -> None:
        self.closed = True  # a request it cuts off is no outage to tell the user about
        self.client.close()

    def _health_changed(self, kind: str, message: str) -> None:
        if self.closed:
            return
        if kind == "outage":
            log.warning("remote engine unreachable: %s", message)
        else:
            log.info("remote engine: %s", message)
        self.on_event(kind, message)


def _template_and_tokenizer(settings: RemoteSettings) -> tuple[Template | None, object]:
    """The family's template (or the tokenizer directory's), and a tokenizer to count with."""
    tokenizer = template = None
    if settings.tokenizer:
        from .tokenizer import read_tokenizer

        directory = Path(settings.tokenizer).expanduser()
        tokenizer = read_tokenizer(directory)
        template = None if settings.family else from_tokenizer(directory)
    if settings.family:
        template = FAMILIES[settings.family]
    if settings.kind == "openai" and template is None:
        raise ModelLoadError("dgLsp.remote.kind openai sends a prompt dg-lsp renders: set dgLsp.remote.family "
                             f"({', '.join(FAMILIES)}) or dgLsp.remote.tokenizer")
    if settings.kind != "openai" and template is not None and template.kind != "fim":
        raise ModelLoadError(f"{template.name} has no fill-in-the-middle tokens for the server to lay out: "
                             "use dgLsp.remote.kind openai")
    return template, tokenizer


def _api_key(settings: RemoteSettings) -> str | None:
    if not settings.apiKeyEnv:
        return None
    key = os.environ.get(settings.apiKeyEnv, "")
    if not key:
        raise ModelLoadError(f"dgLsp.remote.apiKeyEnv names {settings.apiKeyEnv}, which is not set in the "
                             "environment dg-lsp runs in")
    return key
