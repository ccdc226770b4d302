"""The Dream-family model: Qwen2 layers run as a bidirectional masked-diffusion denoiser.

Dream, Dream-Coder, DiffuCoder, DreamOn and Open-dCoder all use Qwen2 layers unchanged (grouped
key/value heads, biases on q/k/v but not o, RoPE, RMSNorm, a SwiGLU MLP) with the causal mask
removed: every position attends to every other. Their logits are **shifted** the published way,
because they were initialised from autoregressive models whose position i predicted token i + 1:
`out[:, i]` predicts token i, with `out = cat([raw[:, :1], raw[:, :-1]], 1)`.

`forward` can also take the keys/values of positions it does not recompute (`kv`), which is what
Fast-dLLM's dual cache needs: the prefix and suffix are run once per block and only the block
being denoised is recomputed, attending to the cached positions and itself. The shift then
happens within the recomputed window, so a caller passes the window starting one token before the
span it wants predicted. This module only does forward passes; sampling lives in `dg_lsp.engine`.

Shapes: B batch, L positions run, S cached positions, H hidden, V vocabulary, D head size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import ops
from .dream_config import DreamConfig

# Per layer, the (keys, values) of some positions, RoPE-rotated at those positions:
# each [B or 1, kv_heads, S, D].
LayerKV = list[tuple[torch.Tensor, torch.Tensor]]


class QwenRMSNorm(nn.Module):
    """Qwen2's RMSNorm: normalised in float32, cast back, then scaled (the order matters in bf16)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


class SwiGLU(nn.Module):
    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class BidirectionalAttention(nn.Module):
    def __init__(self, cfg: DreamConfig):
        super().__init__()
        heads, kv_heads, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.head_dim = d
        self.q_proj = nn.Linear(cfg.hidden_size, heads * d, bias=True)
        self.k_proj = nn.Linear(cfg.hidden_size, kv_heads * d, bias=True)
        self.v_proj = nn.Linear(cfg.hidden_size, kv_heads * d, bias=True)
        self.o_proj = nn.Linear(heads * d, cfg.hidden_size, bias=False)

    def project(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """x: [B, L, H] -> q [B, heads, L, D], k and v [B, kv_heads, L, D], q and k rotated."""
        b, length, _ = x.shape
        d = self.head_dim
        q = ops.apply_rope(self.q_proj(x).view(b, length, -1, d), cos, sin)
        k = ops.apply_rope(self.k_proj(x).view(b, length, -1, d), cos, sin)
        v = self.v_proj(x).view(b, length, -1, d)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def forward(self, x, cos, sin, cached: tuple[torch.Tensor, torch.Tensor] | None):
        """Attention of the L positions over `cached` positions and themselves, no mask.
        Returns (output [B, L, H], this window's (k, v))."""
        q, k, v = self.project(x, cos, sin)
        keys, values = k, v
        if cached is not None:
            # Without a mask, attention does not depend on key order: cached keys go first.
            ck, cv = cached
            if ck.shape[0] != k.shape[0]:  # one cached prompt serves a batch of canvases
                ck, cv = ck.expand(k.shape[0], -1, -1, -1), cv.expand(k.shape[0], -1, -1, -1)
            keys, values = torch.cat([ck, k], dim=2), torch.cat([cv, v], dim=2)
        out = F.scaled_dot_product_attention(q, keys, values, enable_gqa=q.shape[1] != keys.shape[1])
        b, h, length, d = out.shape
        return self.o_proj(out.transpose(1, 2).reshape(b, length, h * d)), (k, v)


class DreamLayer(nn.Module):
    def __init__(self, cfg: DreamConfig):
        super().__init__()
        self.self_attn = BidirectionalAttention(cfg)
        self.mlp = SwiGLU(cfg.hidden_size, cfg.intermediate_size)
        self.input_layernorm = QwenRMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = QwenRMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, cached):
        attn, kv = self.self_attn(self.input_layernorm(x), cos, sin, cached)
        x = x + attn
        return x + self.mlp(self.post_attention_layernorm(x)), kv


class DreamModel(nn.Module):
    """Parameter names are the checkpoint's without the leading `model.` (`layers.N.self_attn.q_proj.weight`,
    `embed_tokens.weight`, `norm.weight`) and `lm_head.weight` (absent when tied)."""

    def __init__(self, cfg: DreamConfig):
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DreamLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = QwenRMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = None if cfg.tie_word_embeddings else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        inv_freq = ops.rope_inv_freq(cfg.head_dim, cfg.rope_theta, "default", 1.0)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        kv: LayerKV | None = None,
        return_kv: bool = False,
        logits_range: tuple[int, int] | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, LayerKV]:
        """input_ids: [B, L] at `position_ids` ([B or 1, L]; default 0..L-1, required with `kv`).
        With `kv`, the positions attend to those cached positions too. Returns shifted float32
        logits [B, L, V] (only output positions [start, end) with `logits_range`: [B, end - start, V],
        which spares the LM head, a large share of a small model's step, for the rest), and with
        `return_kv` also this window's per-layer (k, v) to cache."""
        if kv is not None and position_ids is None:
            raise ValueError("position_ids are required with kv: the window's place among the cached positions")
        if kv is not None and len(kv) != len(self.layers):
            raise ValueError(f"kv holds {len(kv)} layers, the model has {len(self.layers)}")
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        x = self.embed_tokens(input_ids)
        cos, sin = ops.rope_cos_sin(position_ids, self.inv_freq, x.dtype)
        window_kv: LayerKV = []
        for i, layer in enumerate(self.layers):
            x, layer_kv = layer(x, cos, sin, None if kv is None else kv[i])
            window_kv.append(layer_kv)
        if logits_range is None:
            logits = shift_logits(self.logits(self.norm(x)))
        else:
            start, end = logits_range
            if not 0 <= start < end <= input_ids.shape[1]:
                raise ValueError(f"logits_range {logits_range} is not within the {input_ids.shape[1]} positions run")
            # Output position i holds hidden position i - 1's prediction (position 0 its own).
            rows = (torch.arange(start, end, device=x.device) - 1).clamp_min(0)
            logits = self.logits(self.norm(x[:, rows]))
        return (logits, window_kv) if return_kv else logits

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final-normed hidden states [B, L, H] -> unshifted float32 logits [B, L, V]."""
        weight = self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(hidden, weight).float()


def shift_logits(raw: torch.Tensor) -> torch.Tensor:
    """Position i's prediction moves to position i + 1 (the first keeps its own): [B, L, V]."""
    return torch.cat([raw[:, :1], raw[:, :-1]], dim=1)


def kv_cat(*parts: LayerKV) -> LayerKV:
    """Join the cached keys/values of several position ranges (e.g. prefix and suffix), per layer."""
    return [(torch.cat([p[i][0] for p in parts], dim=2), torch.cat([p[i][1] for p in parts], dim=2))
            for i in range(len(parts[0]))]


def kv_slice(kv: LayerKV, start: int, end: int) -> LayerKV:
    """Positions [start, end) of each layer's cached keys/values."""
    return [(k[:, :, start:end], v[:, :, start:end]) for k, v in kv]
