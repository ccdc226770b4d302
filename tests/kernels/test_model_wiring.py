"""The decoder computes the same logits with the kernels swapped in for the references.

On a CPU the model dispatches to the references; here the three `ops` entry points are
rebound to the Triton host wrappers (interpreted), so the wiring itself is checked: cache
slices for sliding layers, one cached prompt under two canvases, transposed canvas keys.
"""

import torch

from dg_lsp.kernels.attention import AttentionConfig, canvas_attention_triton
from dg_lsp.kernels.moe import MoEConfig, moe_experts_triton
from dg_lsp.kernels.sampling import soft_embeddings_triton
from dg_lsp.model import ops
from dg_lsp.model.config import parse_config
from dg_lsp.model.diffusion_gemma import DiffusionGemma

from ._marks import needs_triton

pytestmark = needs_triton


def _tiny_moe_model() -> DiffusionGemma:
    cfg = parse_config(dict(
        model_type="diffusion_gemma_text", vocab_size=96, hidden_size=32, intermediate_size=48,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        global_head_dim=32, num_global_key_value_heads=1, sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
        num_experts=4, top_k_experts=2, moe_intermediate_size=24,
    ))
    torch.manual_seed(0)
    model = DiffusionGemma(cfg).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "experts" in name:
                param.normal_(0, param.shape[-1] ** -0.5)
            elif "norm" in name or "scale" in name:
                param.copy_(1 + 0.1 * torch.randn_like(param))
    return model


def test_denoise_logits_match_with_kernels(monkeypatch):
    model = _tiny_moe_model()
    with torch.inference_mode():
        cache = model.new_cache()
        model.encode(torch.randint(0, 96, (1, 7)), cache)  # sliding layers then read a 3-position slice
        canvas = torch.randint(0, 96, (2, 5))  # two canvases over the one cached prompt
        self_cond = torch.randn(2, 5, 96) * 3
        reference = model.denoise(canvas, cache, self_cond)

        monkeypatch.setattr(ops, "canvas_attention", lambda *a: canvas_attention_triton(*a, config=AttentionConfig(16, 16, 4, 1)))
        monkeypatch.setattr(ops, "moe_experts", lambda *a: moe_experts_triton(*a, config=MoEConfig(16, 16, 16, 4, 1)))
        monkeypatch.setattr(ops, "soft_embeddings", lambda *a: soft_embeddings_triton(*a, block_m=16, block_n=16, block_k=32))
        with_kernels = model.denoise(canvas, cache, self_cond)
    torch.testing.assert_close(with_kernels, reference, rtol=1e-4, atol=1e-4)
