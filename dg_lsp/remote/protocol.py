"""What dg-lsp sends to each kind of server, and how it reads the answers (no I/O here).

- `openai`: POST /v1/completions with the whole prompt rendered by dg-lsp (vLLM rejects `suffix`).
- `openai-suffix`: POST /v1/completions with `prompt` (snippets + prefix) and `suffix`; the server
  lays out its model's FIM tokens (llama-cpp-python, Ollama).
- `llamacpp-infill`: POST /infill with input_prefix, input_suffix and input_extra (llama.cpp's
  llama-server builds the prompt from the GGUF's FIM tokens).

Every request streams (`stream: true`, server-sent events) at temperature 0, asks for the
probability of each generated token (`logprobs` / `n_probs`) for the confidence gate, and
names the stop strings. A server that answers without streaming is read as one JSON body.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from .prompts import TextPrompt
from .templates import Template

PATHS = {"openai": "/v1/completions", "openai-suffix": "/v1/completions", "llamacpp-infill": "/infill"}


class MalformedAnswer(Exception):
    """The server's answer is not what its API promises."""


@dataclass
class Choice:
    """One candidate as it streams in: text pieces with their probabilities."""

    pieces: list[str] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    probabilities: bool = False  # the server reported token probabilities for it

    def add(self, text: str, tokens: list[tuple[str, float]] | None) -> None:
        if not text:
            return
        if tokens and "".join(t for t, _ in tokens) == text:
            self.pieces += [t for t, _ in tokens]
            self.confidences += [p for _, p in tokens]
            self.probabilities = True
        elif tokens:  # pieces that don't spell the text (split characters): their joint probability
            self.pieces.append(text)
            self.confidences.append(math.prod(p for _, p in tokens))
            self.probabilities = True
        else:  # no probabilities: the text is shown as it is
            self.pieces.append(text)
            self.confidences.append(1.0)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def request_for(kind: str, prompt: TextPrompt, template: Template | None, *, model: str, max_tokens: int,
                seed: int | None, logprobs: bool, extra_stops: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]]:
    """The path and JSON body of one completion request; `extra_stops` end it too (a line
    break, for a request of which one line is shown)."""
    stops = [*(template.stops if template is not None else ()), *extra_stops]
    if kind == "llamacpp-infill":
        body: dict[str, Any] = {
            "input_prefix": prompt.prefix, "input_suffix": prompt.suffix,
            "input_extra": [{"filename": "", "text": prompt.context}] if prompt.context else [],
            "n_predict": max_tokens, "temperature": 0.0, "stream": True, "cache_prompt": True,
        }
        if logprobs:
            body["n_probs"] = 1
    else:
        body = {"max_tokens": max_tokens, "temperature": 0.0, "stream": True, "n": 1}
        if kind == "openai":
            body["prompt"] = template.render(prompt.prefix, prompt.suffix, prompt.context, prompt.selection)
        else:
            body["prompt"] = prompt.context + prompt.prefix
            body["suffix"] = prompt.suffix
        if model:
            body["model"] = model
        if logprobs:
            body["logprobs"] = 1
    if stops:
        body["stop"] = stops
    if seed is not None:
        body["seed"] = seed
    return PATHS[kind], body


def parse_event(kind: str, data: str, choices: dict[int, Choice]) -> None:
    """Add one streamed event (or a whole non-streamed answer) to `choices`."""
    try:
        message = json.loads(data)
    except ValueError:
        raise MalformedAnswer(f"the server sent something that is not JSON: {data[:120]!r}") from None
    if not isinstance(message, dict):
        raise MalformedAnswer(f"expected a JSON object, got {type(message).__name__}")
    if "error" in message:  # vLLM and llama.cpp report errors inside the stream too
        error = message["error"]
        raise MalformedAnswer(f"the server reported an error: {_error_text(error)}")
    if kind == "llamacpp-infill":
        _parse_infill(message, choices)
    else:
        _parse_openai(message, choices)


def _parse_openai(message: dict, choices: dict[int, Choice]) -> None:
    raw = message.get("choices")
    if not isinstance(raw, list):
        raise MalformedAnswer("a /v1/completions answer without a list of choices")
    for choice in raw:
        if not isinstance(choice, dict) or not isinstance(choice.get("text", ""), str):
            raise MalformedAnswer("a choice without text")
        index = choice.get("index", 0)
        index = index if isinstance(index, int) else 0
        choices.setdefault(index, Choice()).add(choice.get("text") or "", _openai_tokens(choice.get("logprobs")))


def _openai_tokens(logprobs: Any) -> list[tuple[str, float]] | None:
    """OpenAI's `{tokens, token_logprobs}` (vLLM, llama-cpp-python), or the chat-style
    `{content: [{token, logprob}]}` that llama.cpp's llama-server sends on /v1/completions."""
    if not isinstance(logprobs, dict):
        return None
    if isinstance(logprobs.get("content"), list):
        entries = logprobs["content"]
        if entries and all(isinstance(e, dict) and "logprob" in e for e in entries):
            return [(str(e.get("token", "")), _probability(e["logprob"])) for e in entries]
        return None
    tokens, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
    if not (isinstance(tokens, list) and isinstance(values, list) and len(tokens) == len(values) and tokens):
        return None
    return [(str(t), _probability(v)) for t, v in zip(tokens, values)]


def _parse_infill(message: dict, choices: dict[int, Choice]) -> None:
    content = message.get("content")
    if not isinstance(content, str):
        raise MalformedAnswer("an /infill answer without content")
    choices.setdefault(0, Choice()).add(content, _infill_tokens(message.get("completion_probabilities")))


def _infill_tokens(entries: Any) -> list[tuple[str, float]] | None:
    """llama-server's probabilities: `{token, logprob}` entries (current), or `{content, probs:
    [{tok_str, prob}]}` (older releases)."""
    if not isinstance(entries, list) or not entries:
        return None
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            return None
        if "logprob" in entry:
            out.append((str(entry.get("token", "")), _probability(entry["logprob"])))
            continue
        piece = str(entry.get("content", ""))
        probs = entry.get("probs") if isinstance(entry.get("probs"), list) else []
        chosen = next((p.get("prob") for p in probs if isinstance(p, dict) and p.get("tok_str") == piece), None)
        if not isinstance(chosen, (int, float)):
            return None
        out.append((piece, float(chosen)))
    return out


def _probability(logprob: Any) -> float:
    if not isinstance(logprob, (int, float)) or isinstance(logprob, bool) or math.isnan(logprob):
        return 1.0  # none reported for this token: nothing to hold it back
    return min(1.0, math.exp(logprob))


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)[:300]
    return str(error)[:300]


def error_message(body: bytes) -> str:
    """The server's own words from an error body (JSON `{"error": {"message"}}`, `{"detail"}`, or text)."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            if key in data:
                return _error_text(data[key])
    return text[:300]


def cut_at_stops(pieces: list[str], confidences: list[float], stops: tuple[str, ...]) -> tuple[list[str], list[float]]:
    """The pieces up to the first stop string (which a server may have sent anyway)."""
    text = "".join(pieces)
    ends = [i for stop in stops if stop and (i := text.find(stop)) >= 0]
    if not ends:
        return pieces, confidences
    end = min(ends)
    kept, kept_conf, at = [], [], 0
    for piece, conf in zip(pieces, confidences):
        if at >= end:
            break
        kept.append(piece[: end - at])
        kept_conf.append(conf)
        at += len(piece)
    return kept, kept_conf
