"""Model sizes for the default model, as config.json dicts in the Hugging Face layout.

The text config follows `DiffusionGemmaTextConfig`. The reference always adds a routed
expert block beside the dense MLP; our "dense" models use its single-expert form (one
small expert, routing weight exactly 1) so the shipped checkpoint also loads in
transformers' `DiffusionGemmaForBlockDiffusion`. A one-layer stub vision config keeps
transformers from building a full vision tower for it.
"""

from __future__ import annotations

from typing import Any

VOCAB_SIZE = 8192
_STUB_VISION = {"model_type": "gemma4_vision", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16}


def _text(hidden: int, layers: int, heads: int, head_dim: int, intermediate: int, expert: int,
          window: int) -> dict[str, Any]:
    layer_types = ["sliding_attention"] * (layers - 1) + ["full_attention"]
    return {
        "model_type": "diffusion_gemma_text",
        "vocab_size": VOCAB_SIZE,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": max(1, heads // 2),
        "head_dim": head_dim,
        "global_head_dim": head_dim * 2,
        "num_global_key_value_heads": 1,
        "sliding_window": window,
        "layer_types": layer_types,
        "num_experts": 1,
        "top_k_experts": 1,
        "moe_intermediate_size": expert,
        "hidden_activation": "gelu_pytorch_tanh",
        "rms_norm_eps": 1e-6,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "bos_token_id": 2,
        "tie_word_embeddings": True,
        "max_position_embeddings": 8192,
    }


PRESETS: dict[str, dict[str, Any]] = {
    # For tests: trains in seconds.
    "test": _text(hidden=64, layers=2, heads=2, head_dim=32, intermediate=128, expert=32, window=64),
    # CPU-trainable in an hour (~3M parameters, half of them the embeddings).
    "cpu": _text(hidden=192, layers=4, heads=4, head_dim=48, intermediate=512, expert=96, window=512),
    # The shipped size, trained on a GPU: 22,018,440 parameters (3,670,016 of them the
    # embeddings), 44.04 MB of bf16 weights; with the tokenizer (~0.54 MB) and the model card
    # files the exported directory is ~45 MB, under the 48 MB the shipped model may take.
    # (10 layers with a 1344-wide MLP were 32.9M parameters, 65.7 MB: too big.)
    "gpu": _text(hidden=448, layers=8, heads=8, head_dim=56, intermediate=896, expert=224, window=1024),
}


def model_config(preset: str, canvas_length: int = 64) -> dict[str, Any]:
    """The full config.json for a preset."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose from {', '.join(PRESETS)}")
    return {
        "architectures": ["DiffusionGemmaForBlockDiffusion"],
        "model_type": "diffusion_gemma",
        "text_config": dict(PRESETS[preset]),
        "vision_config": dict(_STUB_VISION),
        "canvas_length": canvas_length,
        "tie_word_embeddings": True,
    }
