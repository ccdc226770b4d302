"""How much memory a Dream-family checkpoint's weights take in each format, from its shapes.

The model is built on the meta device (no memory), and every parameter is counted the way
`dg-lsp quantize` stores it: the weights `quant_modules.QUANTIZED_LINEAR` names become a payload
(`kernels.quant_format`: int8 and fp8 one byte per weight, int4 two weights per byte) plus float32
scales (one per output row, or per row and group of input columns for int4); everything else (the
embedding, an untied LM head, norms, the q/k/v biases) stays in bf16. These are the weights alone:
activations, the dual cache and the CUDA context come on top.

The geometries below are the published config.json values of the checkpoints named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..kernels.quant_format import FORMATS, int4_group_size, payload_dtype, payload_shape
from .dream import DreamModel
from .dream_config import DreamConfig
from .quant_modules import QUANTIZED_LINEAR

KEPT_DTYPE = torch.bfloat16
FLOAT_FORMAT = "bf16"

# Dream-Coder-v0-{Base,Instruct}-7B, DiffuCoder-7B and DreamOn-v0-7B: Qwen2.5(-Coder)-7B geometry.
DREAM_7B = DreamConfig(
    vocab_size=152_064, hidden_size=3584, intermediate_size=18_944, num_hidden_layers=28,
    num_attention_heads=28, num_key_value_heads=4, head_dim=128, rope_theta=1_000_000.0,
    rms_norm_eps=1e-6, tie_word_embeddings=False, mask_token_id=151_666, pad_token_id=151_643,
    bos_token_id=151_665, eos_token_id=151_643,
)
# Open-dCoder-0.5B: Qwen2.5-Coder-0.5B geometry (tied embeddings). Its mask id comes from its tokenizer;
# the value here (Qwen2.5's first unused id) is a placeholder, which no byte count depends on.
OPEN_DCODER_05B = DreamConfig(
    vocab_size=151_936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
    num_attention_heads=14, num_key_value_heads=2, head_dim=64, rope_theta=1_000_000.0,
    rms_norm_eps=1e-6, tie_word_embeddings=True, mask_token_id=151_665,
)


@dataclass(frozen=True)
class WeightMemory:
    format: str  # "bf16", "int8", "int4" or "fp8"
    parameters: int
    quantized_parameters: int  # weights stored in the quantized format
    payload_bytes: int  # quantized weights
    scale_bytes: int  # their float32 scales
    kept_bytes: int  # everything stored in bf16

    @property
    def total_bytes(self) -> int:
        return self.payload_bytes + self.scale_bytes + self.kept_bytes

    def as_dict(self) -> dict:
        return {"format": self.format, "parameters": self.parameters, "quantized_parameters": self.quantized_parameters,
                "payload_bytes": self.payload_bytes, "scale_bytes": self.scale_bytes, "kept_bytes": self.kept_bytes,
                "total_bytes": self.total_bytes, "total_gib": round(self.total_bytes / 2**30, 3)}


def weight_memory(config: DreamConfig, fmt: str = FLOAT_FORMAT, group_size: int = 128,
                  kept_dtype: torch.dtype = KEPT_DTYPE) -> WeightMemory:
    """The bytes of `config`'s weights stored as `fmt` (bf16 or one of `FORMATS`); what is not
    quantized counts in `kept_dtype` (bf16, as the published checkpoints store it)."""
    if fmt != FLOAT_FORMAT and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected {FLOAT_FORMAT} or one of {FORMATS}")
    with torch.device("meta"):
        model = DreamModel(config)
    total = quantized = payload = scales = kept = 0
    for name, param in model.named_parameters():
        total += param.numel()
        shape = tuple(param.shape)
        group = int4_group_size(shape[-1], group_size) if fmt == "int4" else None
        if fmt == FLOAT_FORMAT or not QUANTIZED_LINEAR.match(name) or (fmt == "int4" and group is None):
            kept += param.numel() * kept_dtype.itemsize
            continue
        n, k = shape
        quantized += param.numel()
        payload += math.prod(payload_shape(n, k, fmt)) * payload_dtype(fmt).itemsize
        scales += n * (k // group if fmt == "int4" else 1) * torch.float32.itemsize
    return WeightMemory(fmt, total, quantized, payload, scales, kept)


def memory_table(config: DreamConfig, group_size: int = 128) -> list[WeightMemory]:
    return [weight_memory(config, fmt, group_size) for fmt in (FLOAT_FORMAT, *FORMATS)]
