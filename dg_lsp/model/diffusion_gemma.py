"""The DiffusionGemma text model: one Gemma-4 backbone used in two modes.

- `encode` runs it as a causal encoder over prompt tokens and writes their keys/values
  into a `KVCache`.
- `denoise` runs it as a bidirectional decoder over a canvas of tokens that reads the
  cache without writing it, with a self-conditioning signal from the previous step's
  logits, and returns the canvas logits.

Both modes share every weight except the per-layer output scalars. This module only does
forward passes (differentiable, for training; inference callers run them under
`torch.inference_mode`): sampling lives in `dg_lsp.engine`, loading in `dg_lsp.model.loader`.
Numeric primitives come from `ops`, so they can be replaced by kernels.

Shapes: B batch, T new tokens, C canvas length, S cached positions, H hidden size,
V vocabulary.
"""

from __future__ import annotations

import torch
from torch import nn

from . import ops
from .config import LayerSpec, TextConfig
from .kv_cache import KVCache


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, with_scale: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if with_scale else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.rms_norm(x, self.weight, self.eps)


class GatedMLP(nn.Module):
    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(ops.gelu_tanh(self.gate_proj(x)) * self.up_proj(x))


class Attention(nn.Module):
    def __init__(self, cfg: TextConfig, spec: LayerSpec, layer: int):
        super().__init__()
        self.layer = layer
        self.spec = spec
        self.window = cfg.sliding_window if spec.is_sliding else None
        heads, kv_heads, d = cfg.num_attention_heads, spec.num_kv_heads, spec.head_dim
        bias = cfg.attention_bias
        self.q_proj = nn.Linear(cfg.hidden_size, heads * d, bias=bias)
        self.k_proj = nn.Linear(cfg.hidden_size, kv_heads * d, bias=bias)
        # Full-attention layers use the raw keys as values (attention_k_eq_v).
        self.v_proj = nn.Linear(cfg.hidden_size, kv_heads * d, bias=bias) if spec.has_v_proj else None
        self.o_proj = nn.Linear(heads * d, cfg.hidden_size, bias=bias)
        self.q_norm = RMSNorm(d, cfg.rms_norm_eps)
        self.k_norm = RMSNorm(d, cfg.rms_norm_eps)
        self.v_eps = cfg.rms_norm_eps

    def project(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """x: [B, T, H] -> q [B, heads, T, D], k and v [B, kv_heads, T, D]."""
        b, t, _ = x.shape
        d = self.spec.head_dim
        q = ops.apply_rope(self.q_norm(self.q_proj(x).view(b, t, -1, d)), cos, sin)
        k_raw = self.k_proj(x).view(b, t, -1, d)
        v_raw = self.v_proj(x).view(b, t, -1, d) if self.v_proj is not None else k_raw
        k = ops.apply_rope(self.k_norm(k_raw), cos, sin)
        v = ops.rms_norm(v_raw, None, self.v_eps)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def encode(self, x, cos, sin, cache: KVCache) -> torch.Tensor:
        """Causal attention of T new tokens over the cache; writes their keys/values."""
        q, k, v = self.project(x, cos, sin)
        start, t = cache.length, x.shape[1]
        keys, values = cache.write(self.layer, k, v)
        k_start = 0
        if self.window is not None and start - self.window + 1 > 0:
            # Older keys fall outside every query's window: don't even read them.
            k_start = start - self.window + 1
            keys, values = keys[:, :, k_start:], values[:, :, k_start:]
        mask = ops.sliding_causal_mask(start, t, k_start, keys.shape[2], self.window, x.device)
        return self.o_proj(self._merge(ops.attention(q, keys, values, mask)))

    def denoise(self, x, cos, sin, cache: KVCache) -> torch.Tensor:
        """Bidirectional attention of the canvas over itself and the cached prompt (read-only).
        Sliding layers see the last `window - 1` cached positions, as the reference's cache holds."""
        q, k, v = self.project(x, cos, sin)
        cached_k, cached_v = cache.read(self.layer, last=None if self.window is None else self.window - 1)
        # A batch-1 cache may serve several canvases (candidates) over one prompt.
        return self.o_proj(self._merge(ops.canvas_attention(q, cached_k, cached_v, k, v)))

    @staticmethod
    def _merge(out: torch.Tensor) -> torch.Tensor:
        b, h, t, d = out.shape
        return out.transpose(1, 2).reshape(b, t, h * d)


class Router(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.top_k = cfg.top_k_experts
        self.eps = cfg.rms_norm_eps
        self.root_size = cfg.hidden_size**-0.5
        self.proj = nn.Linear(cfg.hidden_size, cfg.num_experts, bias=False)
        self.scale = nn.Parameter(torch.ones(cfg.hidden_size))
        self.per_expert_scale = nn.Parameter(torch.ones(cfg.num_experts))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [N, H] -> weights [N, K] (float32), expert indices [N, K]."""
        h = ops.rms_norm(x, None, self.eps) * self.scale * self.root_size
        probs = torch.softmax(self.proj(h), dim=-1, dtype=torch.float32)
        weights, index = torch.topk(probs, k=self.top_k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        return weights * self.per_expert_scale[index], index


class Experts(nn.Module):
    """Routed experts stored as 3-D tensors, gate and up projections fused (reference layout):
    gate_up_proj [E, 2 * I, H], down_proj [E, H, I]."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        e, i, h = cfg.num_experts, cfg.moe_intermediate_size, cfg.hidden_size
        self.gate_up_proj = nn.Parameter(torch.empty(e, 2 * i, h))
        self.down_proj = nn.Parameter(torch.empty(e, h, i))

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        gate, up = nn.functional.linear(x, self.gate_up_proj[e]).chunk(2, dim=-1)
        return nn.functional.linear(ops.gelu_tanh(gate) * up, self.down_proj[e])

    def forward(self, x: torch.Tensor, weights: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """x: [N, H]; weights, index: [N, K] -> [N, H]."""
        return ops.moe_experts(x, weights, index, self.gate_up_proj, self.down_proj)


class Layer(nn.Module):
    def __init__(self, cfg: TextConfig, layer: int):
        super().__init__()
        h, eps = cfg.hidden_size, cfg.rms_norm_eps
        self.self_attn = Attention(cfg, cfg.layers[layer], layer)
        self.mlp = GatedMLP(h, cfg.intermediate_size)
        self.input_layernorm = RMSNorm(h, eps)
        self.post_attention_layernorm = RMSNorm(h, eps)
        self.pre_feedforward_layernorm = RMSNorm(h, eps)
        self.post_feedforward_layernorm = RMSNorm(h, eps)
        # The two modes keep their own output scalar; everything else is shared.
        self.register_buffer("layer_scalar", torch.ones(1))
        self.register_buffer("encoder_layer_scalar", torch.ones(1))
        self.is_moe = cfg.is_moe
        if self.is_moe:
            self.router = Router(cfg)
            self.experts = Experts(cfg)
            self.post_feedforward_layernorm_1 = RMSNorm(h, eps)
            self.post_feedforward_layernorm_2 = RMSNorm(h, eps)
            self.pre_feedforward_layernorm_2 = RMSNorm(h, eps)

    def forward(self, x: torch.Tensor, cos, sin, cache: KVCache, encoding: bool) -> torch.Tensor:
        attn = self.self_attn.encode if encoding else self.self_attn.denoise
        x = x + self.post_attention_layernorm(attn(self.input_layernorm(x), cos, sin, cache))
        ff = self.mlp(self.pre_feedforward_layernorm(x))
        if self.is_moe:
            ff = self.post_feedforward_layernorm_1(ff) + self.post_feedforward_layernorm_2(self._moe(x))
        x = x + self.post_feedforward_layernorm(ff)
        return x * (self.encoder_layer_scalar if encoding else self.layer_scalar)

    def _moe(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        expert_in = self.pre_feedforward_layernorm_2(flat)
        if self.experts.gate_up_proj.shape[0] == 1:
            # One expert: routing is the identity (softmax over one score is exactly 1), so run it densely.
            out = self.experts.expert(0, expert_in) * self.router.per_expert_scale[0]
        else:
            weights, index = self.router(flat)
            out = self.experts(expert_in, weights, index)
        return out.reshape(x.shape)


class SelfConditioning(nn.Module):
    """Gated MLP over the previous step's soft embeddings, added to the canvas embeddings."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.pre_norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_eps = cfg.rms_norm_eps
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, embeds: torch.Tensor, soft_embeds: torch.Tensor | None) -> torch.Tensor:
        if soft_embeds is not None:
            s = self.pre_norm(soft_embeds)
            embeds = embeds + self.down_proj(ops.gelu_tanh(self.gate_proj(s)) * self.up_proj(s))
        # With no signal (first step) the MLP of zeros is exactly zero: skip it.
        return ops.rms_norm(embeds, None, self.post_eps)


class DiffusionGemma(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Layer(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_conditioning = SelfConditioning(cfg)
        self.lm_head = None if cfg.tie_word_embeddings else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        for kind in {spec.kind for spec in cfg.layers}:
            spec = next(s for s in cfg.layers if s.kind == kind)
            inv = ops.rope_inv_freq(spec.head_dim, spec.rope_theta, spec.rope_type, spec.partial_rotary_factor)
            self.register_buffer(f"{kind}_inv_freq", inv, persistent=False)

    # -- the two modes ---------------------------------------------------------------

    def encode(self, input_ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """input_ids: [B, T] at positions [cache.length, cache.length + T).
        Writes their KV into `cache` and returns the final-normed hidden states [B, T, H]."""
        x = self._embed(input_ids)
        positions = torch.arange(cache.length, cache.length + input_ids.shape[1], device=x.device)[None]
        x = self._run_layers(x, positions, cache, encoding=True)
        cache.commit(input_ids)
        return self.norm(x)

    def denoise(self, canvas: torch.Tensor, cache: KVCache, self_cond_logits: torch.Tensor | None = None) -> torch.Tensor:
        """canvas: [B, C] placed right after the cached prompt; self_cond_logits: [B, C, V] from the
        previous step or None at the first. Returns float32 logits [B, C, V]. The cache is not changed;
        a batch-1 cache serves a batch of canvases."""
        embeds = self._embed(canvas)
        soft = None if self_cond_logits is None else self.soft_embeddings(self_cond_logits)
        x = self.self_conditioning(embeds, soft)
        positions = torch.arange(cache.length, cache.length + canvas.shape[1], device=x.device)[None]
        x = self._run_layers(x, positions, cache, encoding=False)
        return self.logits(self.norm(x))

    # -- pieces ------------------------------------------------------------------------

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final-normed hidden states -> softcapped float32 logits. Also gives the causal
        encoder's next-token logits when applied to `encode`'s output."""
        weight = self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return ops.softcap(nn.functional.linear(hidden, weight).float(), self.config.final_logit_softcapping)

    def soft_embeddings(self, logits: torch.Tensor) -> torch.Tensor:
        """softmax(logits) @ embed, scaled like token embeddings: [B, C, V] -> [B, C, H]."""
        weight = self.embed_tokens.weight
        return ops.soft_embeddings(logits, weight, ops.embed_scale(self.config.hidden_size, weight.dtype))

    def new_cache(self, batch_size: int = 1, capacity: int = 256) -> KVCache:
        return KVCache(len(self.layers), batch_size, capacity)

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        weight = self.embed_tokens.weight
        # A 0-dim CPU scale multiplies a CUDA tensor as a scalar: no host-to-device copy, which a
        # CUDA-graph capture of the denoising step would refuse.
        return self.embed_tokens(ids) * ops.embed_scale(self.config.hidden_size, weight.dtype)

    def _run_layers(self, x, positions, cache: KVCache, encoding: bool) -> torch.Tensor:
        rope = {
            kind: ops.rope_cos_sin(positions, getattr(self, f"{kind}_inv_freq"), x.dtype)
            for kind in {spec.kind for spec in self.config.layers}
        }
        for layer in self.layers:
            cos, sin = rope[layer.self_attn.spec.kind]
            x = layer(x, cos, sin, cache, encoding)
        return x
