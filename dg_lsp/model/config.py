"""The DiffusionGemma text configuration, read from a Hugging Face `config.json`.

Only the text part matters to dg-lsp: vision settings are ignored. The field names and
defaults follow `DiffusionGemmaTextConfig` in HF transformers so a checkpoint's config.json
can be read as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SUPPORTED_MODEL_TYPES = ("diffusion_gemma", "diffusion_gemma_text")
SLIDING = "sliding_attention"
FULL = "full_attention"


class ConfigError(ValueError):
    """config.json is missing something or holds a value dg-lsp cannot run."""


@dataclass(frozen=True)
class LayerSpec:
    """What differs between sliding and full attention layers."""

    kind: str  # SLIDING or FULL
    head_dim: int
    num_kv_heads: int
    has_v_proj: bool  # full layers share K and V (`attention_k_eq_v`): no v_proj
    rope_theta: float
    rope_type: str  # "default" or "proportional"
    partial_rotary_factor: float

    @property
    def is_sliding(self) -> bool:
        return self.kind == SLIDING


@dataclass
class TextConfig:
    vocab_size: int = 262_144
    hidden_size: int = 2304
    intermediate_size: int = 9216
    num_hidden_layers: int = 30
    num_attention_heads: int = 8
    num_key_value_heads: int = 4
    head_dim: int = 256
    hidden_activation: str = "gelu_pytorch_tanh"
    rms_norm_eps: float = 1e-6
    pad_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 1
    bos_token_id: int | None = 2
    tie_word_embeddings: bool = True
    sliding_window: int = 512
    final_logit_softcapping: float | None = 30.0
    num_experts: int | None = None
    top_k_experts: int | None = None
    moe_intermediate_size: int | None = None
    attention_bias: bool = False
    layer_types: list[str] = field(default_factory=list)
    rope_parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    # layer index -> overrides of head_dim / num_key_value_heads (full layers use a larger head)
    per_layer_config: dict[int, dict[str, Any]] = field(default_factory=dict)
    canvas_length: int = 256
    layers: list[LayerSpec] = field(default_factory=list)

    @property
    def is_moe(self) -> bool:
        return bool(self.num_experts)

    @property
    def eos_token_ids(self) -> list[int]:
        if self.eos_token_id is None:
            return []
        return [self.eos_token_id] if isinstance(self.eos_token_id, int) else list(self.eos_token_id)


_DEFAULT_ROPE = {
    SLIDING: {"rope_type": "default", "rope_theta": 10_000.0},
    FULL: {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1_000_000.0},
}


def parse_config(raw: dict[str, Any]) -> TextConfig:
    """Turn a config.json dict (multimodal or text-only) into a validated TextConfig."""
    model_type = raw.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigError(
            f"model_type {model_type!r} is not supported; dg-lsp runs {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    text = dict(raw.get("text_config") or {}) if model_type == "diffusion_gemma" else dict(raw)
    if model_type == "diffusion_gemma" and not text:
        raise ConfigError("config.json has model_type 'diffusion_gemma' but no text_config")

    known = {f for f in TextConfig.__dataclass_fields__ if f not in ("layers", "per_layer_config", "canvas_length")}
    cfg = TextConfig(**{k: v for k, v in text.items() if k in known and (v is not None or k in _NULLABLE)})
    cfg.canvas_length = int(raw.get("canvas_length") or text.get("canvas_length") or 256)
    if text.get("use_bidirectional_attention") == "all":
        raise ConfigError("use_bidirectional_attention='all' (a bidirectional encoder) is not supported")

    if not cfg.layer_types:
        # HF default: every 6th layer is full attention.
        cfg.layer_types = [FULL if (i + 1) % 6 == 0 else SLIDING for i in range(cfg.num_hidden_layers)]
    if len(cfg.layer_types) != cfg.num_hidden_layers:
        raise ConfigError(
            f"layer_types has {len(cfg.layer_types)} entries but num_hidden_layers is {cfg.num_hidden_layers}"
        )
    unknown = set(cfg.layer_types) - {SLIDING, FULL}
    if unknown:
        raise ConfigError(f"unknown layer types {sorted(unknown)}")
    # HF forces the last layer to full attention; do the same so both read a config alike.
    cfg.layer_types = list(cfg.layer_types)
    cfg.layer_types[-1] = FULL

    rope = {**_DEFAULT_ROPE, **(cfg.rope_parameters or {})}
    cfg.rope_parameters = rope
    cfg.per_layer_config = _per_layer_overrides(text, cfg.layer_types)
    cfg.layers = [_layer_spec(cfg, i) for i in range(cfg.num_hidden_layers)]

    if cfg.is_moe and not (cfg.top_k_experts and cfg.moe_intermediate_size):
        raise ConfigError("num_experts is set but top_k_experts or moe_intermediate_size is missing")
    if cfg.hidden_activation not in ("gelu_pytorch_tanh", "gelu_new"):  # both are tanh-approximated GELU
        raise ConfigError(f"hidden_activation {cfg.hidden_activation!r} is not supported")
    return cfg


# Fields a checkpoint may set to null on purpose.
_NULLABLE = {"final_logit_softcapping", "num_experts", "top_k_experts", "moe_intermediate_size",
             "eos_token_id", "pad_token_id", "bos_token_id"}


def _per_layer_overrides(text: dict[str, Any], layer_types: list[str]) -> dict[int, dict[str, Any]]:
    """Full layers get their own head size (and KV heads): saved as `per_layer_config` by
    transformers, or given as `global_head_dim` / `num_global_key_value_heads` by hand."""
    saved = text.get("per_layer_config")
    if saved:
        return {int(k): dict(v) for k, v in saved.items()}
    overrides: dict[str, Any] = {"head_dim": text.get("global_head_dim", 512)}
    if text.get("num_global_key_value_heads") is not None:
        overrides["num_key_value_heads"] = text["num_global_key_value_heads"]
    return {i: dict(overrides) for i, kind in enumerate(layer_types) if kind == FULL}


def _layer_spec(cfg: TextConfig, index: int) -> LayerSpec:
    kind = cfg.layer_types[index]
    over = cfg.per_layer_config.get(index, {})
    rope = cfg.rope_parameters.get(kind) or {}
    rope_type = rope.get("rope_type", "default")
    if rope_type not in ("default", "proportional"):
        raise ConfigError(f"rope_type {rope_type!r} ({kind}) is not supported")
    num_kv_heads = int(over.get("num_key_value_heads", cfg.num_key_value_heads))
    if cfg.num_attention_heads % num_kv_heads:
        raise ConfigError(f"layer {index}: {cfg.num_attention_heads} heads do not split into {num_kv_heads} KV heads")
    return LayerSpec(
        kind=kind,
        head_dim=int(over.get("head_dim", cfg.head_dim)),
        num_kv_heads=num_kv_heads,
        has_v_proj=kind == SLIDING,
        rope_theta=float(rope.get("rope_theta", 10_000.0)),
        rope_type=rope_type,
        partial_rotary_factor=float(rope.get("partial_rotary_factor", 1.0)),
    )
