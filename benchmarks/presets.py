"""Model geometries shared by the benchmarks (and the CI compile check), without transformers.

`PRESETS` holds the text-config keyword arguments of DiffusionGemmaConfig(text_config=...)
for each geometry; `gemma-26b-a4b` is the published one. Kept apart from engine.py, which
imports transformers at once, so a script that only needs the numbers (gpu_end_to_end.py
with --no-reference, tests/kernels/_gpu_launches.py) runs where transformers lacks
DiffusionGemma.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch


def _layer_types(n: int) -> list[str]:
    """Five sliding layers to one full one, the last layer full (as transformers forces)."""
    types = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n)]
    types[-1] = "full_attention"
    return types


# Text-config kwargs of DiffusionGemmaConfig(text_config=...) for each preset.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        layer_types=_layer_types(4), num_attention_heads=2, num_key_value_heads=1, head_dim=32,
        global_head_dim=64, num_global_key_value_heads=1, sliding_window=64,
        num_experts=4, top_k_experts=2, moe_intermediate_size=64,
    ),
    "small": dict(
        vocab_size=8192, hidden_size=256, intermediate_size=1024, num_hidden_layers=6,
        layer_types=_layer_types(6), num_attention_heads=4, num_key_value_heads=2, head_dim=64,
        global_head_dim=128, num_global_key_value_heads=1, sliding_window=256,
        num_experts=4, top_k_experts=2, moe_intermediate_size=256,
    ),
    # From the published config (google/diffusiongemma-26B-A4B-it, Gemma-4 26B-A4B geometry),
    # check before relying. Only meant for a GPU: one copy is ~52 GB in bfloat16 and this script
    # holds two (ours and the reference), so on an 80 GB GPU use --layers to cut the depth.
    "gemma-26b-a4b": dict(
        vocab_size=262_144, hidden_size=2816, intermediate_size=2112, num_hidden_layers=30,
        layer_types=_layer_types(30), num_attention_heads=16, num_key_value_heads=8, head_dim=256,
        global_head_dim=512, num_global_key_value_heads=2, sliding_window=1024,
        num_experts=128, top_k_experts=8, moe_intermediate_size=704,
    ),
}

# A minimal vision tower: the checkpoint format needs one, the text benchmark never runs it.
VISION_CONFIG = dict(
    model_type="gemma4_vision", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
    num_attention_heads=2, num_key_value_heads=2, head_dim=16,
)


def text_config_for(preset: str, layers: int | None) -> dict[str, Any]:
    text = dict(PRESETS[preset])
    if layers is not None:
        text["num_hidden_layers"] = layers
        text["layer_types"] = _layer_types(layers)
    return text


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    """Build the random model directly in the benchmark dtype (halves host memory for bf16)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
