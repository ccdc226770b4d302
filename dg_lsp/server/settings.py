"""The one settings schema, `dgLsp.*`, shared by the server and the editor clients.

Read from `initializationOptions` (either `{"dgLsp": {...}}` or the bare table) and from
`workspace/didChangeConfiguration`. An unknown key or a value of the wrong type gives a
warning and keeps the previous value: settings never crash the server. `dgLsp.remote` is a
nested table (the remote engine's server), checked key by key the same way; its names appear
dotted (`dgLsp.remote.url`) in the schema, as VS Code declares them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any

DEFAULT_LANGUAGES = ("python", "javascript", "javascriptreact", "typescript", "typescriptreact", "rust", "go", "lua")


@dataclass(frozen=True)
class RemoteSettings:
    """`dgLsp.remote`: the OpenAI-compatible server that `dgLsp.engine = "remote"` sends model calls to."""

    url: str = ""  # base URL, e.g. http://gpu-box:8000; dg-lsp appends /v1/completions or /infill
    kind: str = "openai"  # openai (prompt rendered by dg-lsp), openai-suffix (prompt + suffix), llamacpp-infill
    model: str = ""  # the served model name, sent as "model" (vLLM requires it)
    family: str = ""  # prompt template and stop tokens; "" = from `tokenizer`, or none (openai-suffix, infill)
    tokenizer: str = ""  # local model directory whose tokenizer decides template, stops and token counts
    apiKeyEnv: str = ""  # name of the environment variable holding the API key (never the key itself)
    timeoutMs: int = 5000  # per request, connection to last byte


@dataclass(frozen=True)
class Settings:
    modelPath: str = ""  # local Hugging Face directory; "" = the default model, when one ships
    device: str = "auto"  # auto, cpu or cuda
    quantization: str = "none"  # none, int8, int4 or fp8: applied at load to a checkpoint stored unquantized
    maxCanvas: int = 128  # tokens, 16 to 256
    # Automatic completions' canvas, at most: a CPU step costs in proportion to it, and the gate
    # rarely shows more than a line of a small model's output (benchmarks/new_position.py).
    autoMaxCanvas: int = 32
    # Most denoising steps for automatic completions. One: the gate shows only the prefix the
    # causal encoder confirms, and on held-out line holes 1 step and 2 do as well as each other
    # (benchmarks/confidence.py), so latency decides.
    steps: int = 1
    invokedSteps: int = 32  # most steps when the user asks for a completion explicitly
    candidates: int = 3  # completions offered when invoked
    contextTokens: int = 2048  # prompt budget
    enabledLanguages: tuple[str, ...] = DEFAULT_LANGUAGES + ("plaintext",)
    seed: int = 0
    # A completion is shown only as far as the model's probability that it is right (the product
    # of its tokens' probabilities, `server/confidence.py`) stays at or above this. Calibrated for
    # the default model (drafts on): the smallest threshold whose shown completions are right at
    # least 60% of the time with at least 25% of requests answered on both samples of held-out
    # line holes (benchmarks/confidence.py: 67.2% right, 31.0% answered on 600 holes; 61.3%,
    # 27.2% on 1,546 others).
    minConfidence: float = 0.2
    # The same when the cursor is inside a line's code (some of the line typed before it), where
    # the prompt's last token is healed (`dg_lsp.prompt.healing`) and the model knows more: the
    # smallest threshold right at least 60% of the time on both samples of such cursors
    # (benchmarks/confidence.py --inside, drafts on: 70.4% right, 43.3% answered on 600 holes;
    # 66.6%, 42.4% on 1,546 others).
    minConfidenceInLine: float = 0.1
    # An invoked request's gate (the user asked, so it may show less certain text): its first
    # offered completion is cut where the probability falls below this, and its whole candidates
    # come after. Calibrated for the default model (drafts on, its canvas seeded with the
    # encoder's greedy line, sampling at 0.1 -> 0.05): the floor whose first offered completions
    # bring the most right characters per request on each sample of held-out line holes
    # (benchmarks/confidence.py --invoked: 1.39 and 1.43 a request, against 0.48 and 0.46 for
    # the whole candidate; 0.25 gives 1.42 and 1.37, but would be stricter than the automatic
    # gate). Never stricter than the automatic gate at the same place.
    minConfidenceInvoked: float = 0.1
    engine: str = "local"  # local (the model in this process) or remote (dgLsp.remote's server)
    remote: RemoteSettings = RemoteSettings()

    def enabled_for(self, language_id: str) -> bool:
        return "*" in self.enabledLanguages or language_id in self.enabledLanguages


REMOTE_KINDS = ("openai", "openai-suffix", "llamacpp-infill")
REMOTE_FAMILIES = ("", "qwen", "starcoder", "codellama", "deepseek", "diffusiongemma")
_CHOICES = {"device": ("auto", "cpu", "cuda"), "quantization": ("none", "int8", "int4", "fp8"),
            "engine": ("local", "remote"), "remote.kind": REMOTE_KINDS, "remote.family": REMOTE_FAMILIES}
_RANGES = {"maxCanvas": (16, 256), "autoMaxCanvas": (16, 256), "steps": (1, 256), "invokedSteps": (1, 256), "candidates": (1, 8),
           "contextTokens": (64, 32768), "seed": (0, 2**31 - 1), "minConfidence": (0.0, 1.0),
           "minConfidenceInLine": (0.0, 1.0), "minConfidenceInvoked": (0.0, 1.0),
           "remote.timeoutMs": (100, 600_000)}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def update_settings(current: Settings, raw: Any) -> tuple[Settings, list[str]]:
    """Apply a `dgLsp` table (or a dict holding one) to `current`; returns the new settings
    and warnings for everything that was ignored."""
    if isinstance(raw, dict) and isinstance(raw.get("dgLsp"), dict):
        raw = raw["dgLsp"]
    if raw is None:
        return current, []
    if not isinstance(raw, dict):
        return current, [f"dgLsp settings must be an object, got {type(raw).__name__}"]
    known = {f.name: f for f in fields(Settings)}
    changes: dict[str, Any] = {}
    warnings = []
    for key, value in raw.items():
        if key not in known:
            warnings.append(f"unknown setting dgLsp.{key} ignored")
            continue
        if key == "remote":
            changes[key] = _update_remote(current.remote, value, warnings)
            continue
        try:
            changes[key] = _coerce(key, value, getattr(current, key))
        except ValueError as err:
            warnings.append(f"dgLsp.{key}: {err}; keeping {getattr(current, key)!r}")
    return replace(current, **changes), warnings


def _update_remote(current: RemoteSettings, raw: Any, warnings: list[str]) -> RemoteSettings:
    """The `dgLsp.remote` table, key by key: what is wrong is reported and the rest applies."""
    if raw is None:
        return current
    if not isinstance(raw, dict):
        warnings.append(f"dgLsp.remote: expected an object, got {type(raw).__name__}; keeping it as it was")
        return current
    known = {f.name for f in fields(RemoteSettings)}
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            hint = ("; a key is never stored in settings: put it in an environment variable and name that "
                    "variable in dgLsp.remote.apiKeyEnv") if key.lower() in ("apikey", "api_key", "key", "token") else ""
            warnings.append(f"unknown setting dgLsp.remote.{key} ignored{hint}")
            continue
        try:
            changes[key] = _coerce(f"remote.{key}", value, getattr(current, key))
        except ValueError as err:
            warnings.append(f"dgLsp.remote.{key}: {err}; keeping {getattr(current, key)!r}")
    return replace(current, **changes)


def _coerce(key: str, value: Any, old: Any) -> Any:
    if isinstance(old, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of strings")
        return tuple(value)
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # JSON 1 for 1.0
    if isinstance(old, bool) or type(value) is not type(old):
        if not (isinstance(old, int) and isinstance(value, float) and value.is_integer()):
            raise ValueError(f"expected {type(old).__name__}, got {type(value).__name__}")
        value = int(value)
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ValueError(f"expected one of {', '.join(_CHOICES[key])}")
    if key in _RANGES and not _RANGES[key][0] <= value <= _RANGES[key][1]:
        raise ValueError(f"expected {_RANGES[key][0]} to {_RANGES[key][1]}")
    if key == "remote.url" and value and not value.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    if key == "remote.apiKeyEnv" and value and not _ENV_NAME.fullmatch(value):
        raise ValueError("expected the name of an environment variable (letters, digits, _), not a key")
    return value


def schema() -> dict[str, Any]:
    """JSON-schema-like description, for docs and the editor clients; the nested table's keys
    are dotted (`dgLsp.remote.url`)."""
    out = {}
    entries = [(f.name, f.default) for f in fields(Settings) if f.name != "remote"]
    entries += [(f"remote.{f.name}", f.default) for f in fields(RemoteSettings)]
    for name, default in entries:
        out[f"dgLsp.{name}"] = {"default": list(default) if isinstance(default, tuple) else default,
                                **({"enum": list(_CHOICES[name])} if name in _CHOICES else {}),
                                **({"minimum": _RANGES[name][0], "maximum": _RANGES[name][1]}
                                   if name in _RANGES else {})}
    return out
