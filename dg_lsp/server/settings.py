"""The one settings schema, `dgLsp.*`, shared by the server and the editor clients.

Read from `initializationOptions` (either `{"dgLsp": {...}}` or the bare table) and from
`workspace/didChangeConfiguration`. An unknown key or a value of the wrong type gives a
warning and keeps the previous value: settings never crash the server.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

DEFAULT_LANGUAGES = ("python", "javascript", "javascriptreact", "typescript", "typescriptreact", "rust", "go", "lua")


@dataclass(frozen=True)
class Settings:
    modelPath: str = ""  # local Hugging Face directory; "" = the default model, when one ships
    device: str = "auto"  # auto, cpu or cuda
    quantization: str = "none"  # none, int8, int4 or fp8: applied at load to a checkpoint stored unquantized
    maxCanvas: int = 128  # tokens, 16 to 256
    steps: int = 4  # most denoising steps for automatic completions (latency first: ~56 ms on a 2-core CPU)
    invokedSteps: int = 32  # most steps when the user asks for a completion explicitly
    candidates: int = 3  # completions offered when invoked
    contextTokens: int = 2048  # prompt budget
    enabledLanguages: tuple[str, ...] = DEFAULT_LANGUAGES + ("plaintext",)
    seed: int = 0
    # Tokens below this probability (final denoising step) are not shown: a completion is cut
    # before the first one. From the sweep on held-out line holes (benchmarks/confidence.py,
    # default model): at 0.99 shown completions are right 56% of the time (1% ungated).
    minConfidence: float = 0.99

    def enabled_for(self, language_id: str) -> bool:
        return "*" in self.enabledLanguages or language_id in self.enabledLanguages


_CHOICES = {"device": ("auto", "cpu", "cuda"), "quantization": ("none", "int8", "int4", "fp8")}
_RANGES = {"maxCanvas": (16, 256), "steps": (1, 256), "invokedSteps": (1, 256), "candidates": (1, 8),
           "contextTokens": (64, 32768), "seed": (0, 2**31 - 1), "minConfidence": (0.0, 1.0)}


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
        try:
            changes[key] = _coerce(key, value, getattr(current, key))
        except ValueError as err:
            warnings.append(f"dgLsp.{key}: {err}; keeping {getattr(current, key)!r}")
    return replace(current, **changes), warnings


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
    return value


def schema() -> dict[str, Any]:
    """JSON-schema-like description, for docs and the editor clients."""
    out = {}
    for f in fields(Settings):
        default = f.default
        out[f"dgLsp.{f.name}"] = {"default": list(default) if isinstance(default, tuple) else default,
                                  **({"enum": list(_CHOICES[f.name])} if f.name in _CHOICES else {}),
                                  **({"minimum": _RANGES[f.name][0], "maximum": _RANGES[f.name][1]}
                                     if f.name in _RANGES else {})}
    return out
