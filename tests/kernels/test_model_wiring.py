"""The decoder computes the same logits with the kernels swapped in for the references.

The three `ops` entry points are rebound, once to the torch reference twins and once to the
Triton host wrappers, so the wiring itself is checked: cache slices for sliding layers, one
cached prompt under two canvases, transposed canvas keys. Both runs use `kernel_device()`:
CUDA tensors for the compiled kernels on a GPU, CPU tensors for the interpreter elsewhere
(tests/kernels/conftest.py sets TRITON_INTERPRET only where there is no GPU; compiled Triton
cannot read CPU tensors).
"""

import torch

from dg_lsp.kernels.attention import AttentionConfig, canvas_attention_reference, canvas_attention_triton
from dg_lsp.kernels.moe import MoEConfig, moe_experts_reference, moe_experts_triton
from dg_lsp.kernels.sampling import soft_embeddings_reference, soft_embeddings_triton
from dg_lsp.model import ops
from dg_lsp.model.config import parse_config
from dg_lsp.model.diffusion_gemma import DiffusionGemma

from ._marks import kernel_device, needs_triton
from ._tolerances import tolerance

pytestmark = needs_triton


TINY = dict(
    model_type="diffusion_gemma_text", vocab_size=96, hidden_size=32, intermediate_size=48,
    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
    global_head_dim=32, num_global_key_value_heads=1, sliding_window=4,
    layer_types=["sliding_attention", "full_attention"],
    num_experts=4, top_k_experts=2, moe_intermediate_size=24,
)
PROMPT, CANVAS = 7, 5


def _tiny_moe_model() -> DiffusionGemma:
    cfg = parse_config(dict(TINY))
    torch.manual_seed(0)
    model = DiffusionGemma(cfg).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "experts" in name:
                param.normal_(0, param.shape[-1] ** -0.5)
            elif "norm" in name or "scale" in name:
                param.copy_(1 + 0.1 * torch.randn_like(param))
    return model


def _bind(monkeypatch, attention, experts, soft_embeddings) -> None:
    monkeypatch.setattr(ops, "canvas_attention", attention)
    monkeypatch.setattr(ops, "moe_experts", experts)
    monkeypatch.setattr(ops, "soft_embeddings", soft_embeddings)


def test_denoise_logits_match_with_kernels(monkeypatch):
    device = kernel_device()
    model = _tiny_moe_model().to(device)
    g = torch.Generator().manual_seed(1)
    vocab = TINY["vocab_size"]
    prompt = torch.randint(0, vocab, (1, PROMPT), generator=g).to(device)  # sliding layers then read a 3-position slice
    canvas = torch.randint(0, vocab, (2, CANVAS), generator=g).to(device)  # two canvases over the one cached prompt
    self_cond = (torch.randn(2, CANVAS, vocab, generator=g) * 3).to(device)
    with torch.inference_mode():
        cache = model.new_cache()
        model.encode(prompt, cache)
        # Explicitly the references: on a GPU the dispatchers would pick the kernels themselves.
        _bind(monkeypatch, canvas_attention_reference, moe_experts_reference, soft_embeddings_reference)
        reference = model.denoise(canvas, cache, self_cond)
        _bind(
            monkeypatch,
            lambda *a: canvas_attention_triton(*a, config=AttentionConfig(16, 16, 4, 1)),
            lambda *a: moe_experts_triton(*a, config=MoEConfig(16, 16, 16, 4, 1)),
            lambda *a: soft_embeddings_triton(*a, block_m=16, block_n=16, block_k=32),
        )
        with_kernels = model.denoise(canvas, cache, self_cond)
    # Both sides are float32 (the model casts to float32 inside, so no float64 twin). Their
    # rounding errors add up along the chain of sums from the input to the logits: the soft
    # embedding over the vocabulary, then per layer the projections' inputs, the attention's
    # keys (prompt + canvas) and the experts' hidden width.
    per_layer = TINY["hidden_size"] + TINY["num_attention_heads"] * TINY["global_head_dim"] + PROMPT + CANVAS \
        + TINY["intermediate_size"]
    chain = vocab + TINY["num_hidden_layers"] * per_layer
    tol = tolerance(torch.float32, chain, magnitude=float(reference.std()))
    torch.testing.assert_close(with_kernels, reference, **tol)
