"""The Dream-family configuration (Dream, Dream-Coder, DiffuCoder, DreamOn, Open-dCoder).

All of them are Qwen2 geometry run as bidirectional masked diffusion. Dream-org's checkpoints
publish a `model_type` "Dream" config.json (their `DreamConfig`: Qwen2's fields plus `mask_token_id`,
a flat `rope_theta`, `rope_scaling` null); Open-dCoder publishes a plain Qwen2 config.json, which
transformers 5 writes with `rope_parameters` instead of `rope_theta`. Both are read here.

The special ids come from config.json where it names them; the mask (and DreamOn's expand) token
can also come from the tokenizer, which the loader passes in as `tokenizer_ids`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .config import ConfigError

DREAM_MODEL_TYPES = ("Dream", "dream")
QWEN2_MODEL_TYPES = ("qwen2",)


@dataclass(frozen=True)
class DreamConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rope_theta: float
    rms_norm_eps: float
    tie_word_embeddings: bool
    mask_token_id: int
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    expand_token_id: int | None = None  # DreamOn's [expand]: one position becomes two masks
    variable_length: bool = False  # True for DreamOn checkpoints (the span grows and shrinks)
    max_position_embeddings: int = 32_768


def parse_dream_config(raw: dict[str, Any], tokenizer_ids: Mapping[str, int | None] | None = None) -> DreamConfig:
    """A Dream or Qwen2 config.json dict -> a validated DreamConfig.

    `tokenizer_ids` may give "mask_token_id" / "expand_token_id" found in the tokenizer; config.json's
    own values win."""
    tokenizer_ids = tokenizer_ids or {}
    model_type = raw.get("model_type")
    if model_type not in DREAM_MODEL_TYPES + QWEN2_MODEL_TYPES:
        raise ConfigError(f"model_type {model_type!r} is not a Dream-family model (expected 'Dream' or 'qwen2')")
    try:
        heads = int(raw["num_attention_heads"])
        hidden = int(raw["hidden_size"])
        sizes = {name: int(raw[name]) for name in ("vocab_size", "intermediate_size", "num_hidden_layers")}
        kv_heads = int(raw.get("num_key_value_heads") or heads)
    except KeyError as err:
        raise ConfigError(f"{err.args[0]} is missing") from None
    head_dim = int(raw.get("head_dim") or hidden // heads)
    if heads % kv_heads:
        raise ConfigError(f"{heads} attention heads do not split into {kv_heads} key/value heads")
    if raw.get("hidden_act", "silu") != "silu":
        raise ConfigError(f"hidden_act {raw['hidden_act']!r} is not supported (Qwen2 uses silu)")
    if raw.get("use_sliding_window"):
        raise ConfigError("use_sliding_window is set; the Dream family attends over the whole sequence")

    mask = _first_id(raw.get("mask_token_id"), tokenizer_ids.get("mask_token_id"))
    if mask is None:
        raise ConfigError("no mask token: config.json has no mask_token_id and the tokenizer has no "
                          "mask token (tokenizer_config.json mask_token, or <|mask|> in tokenizer.json)")
    expand = _first_id(raw.get("expand_token_id"), tokenizer_ids.get("expand_token_id"))
    for name, value in (("mask_token_id", mask), ("expand_token_id", expand)):
        if value is not None and not 0 <= value < sizes["vocab_size"]:
            raise ConfigError(f"{name} {value} is outside the vocabulary ({sizes['vocab_size']})")
    return DreamConfig(
        hidden_size=hidden, num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
        rope_theta=_rope_theta(raw), rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        mask_token_id=mask, pad_token_id=_first_id(raw.get("pad_token_id")),
        bos_token_id=_first_id(raw.get("bos_token_id")), eos_token_id=_first_id(raw.get("eos_token_id")),
        expand_token_id=expand, variable_length=expand is not None,
        max_position_embeddings=int(raw.get("max_position_embeddings") or 32_768), **sizes,
    )


def _rope_theta(raw: dict[str, Any]) -> float:
    """Plain RoPE only: `rope_theta` (Dream layout) or `rope_parameters` (transformers 5 layout)."""
    scaling = raw.get("rope_scaling") or raw.get("rope_parameters") or {}
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    if rope_type != "default":
        raise ConfigError(f"RoPE scaling {rope_type!r} is not supported; only plain RoPE")
    theta = raw.get("rope_theta", scaling.get("rope_theta", 10_000.0))
    return float(theta)


def _first_id(*values: Any) -> int | None:
    """The first value that is set; a list (several EOS ids) gives its first entry."""
    for value in values:
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            return int(value)
    return None
