"""Routed experts as a grouped matmul against the model's per-expert loop."""

import pytest
import torch

from dg_lsp.kernels import moe
from dg_lsp.kernels.moe import MoEConfig, moe_experts_reference, moe_experts_triton, schedule

from ._marks import kernel_device, needs_cuda, needs_triton
from ._tolerances import float64, tolerance

pytestmark = needs_triton


def _inputs(n, h, inter, experts, top_k, device, dtype=torch.float32, seed=0, skew=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, h, generator=g)
    gate_up = torch.randn(experts, 2 * inter, h, generator=g) / h**0.5
    down = torch.randn(experts, h, inter, generator=g) / inter**0.5
    scores = torch.rand(n, experts, generator=g)
    if skew:
        scores[:, : experts // 2] += 1  # half the experts take every token, the rest none
    weights, index = torch.topk(scores, top_k, dim=-1)
    weights = weights / weights.sum(-1, keepdim=True)
    return x.to(device, dtype), weights.to(device), index.to(device), gate_up.to(device, dtype), down.to(device, dtype)


@pytest.mark.parametrize(("n", "h", "inter", "experts", "top_k", "block_m", "skew"), [
    (7, 40, 24, 5, 2, 16, False),
    (13, 33, 20, 8, 3, 16, True),   # unused experts, odd hidden size
    (40, 24, 17, 3, 2, 16, False),  # several row blocks per expert
    (1, 32, 16, 4, 1, 32, False),   # a single token
])
def test_moe_matches_reference(n, h, inter, experts, top_k, block_m, skew):
    inputs = _inputs(n, h, inter, experts, top_k, kernel_device(), seed=n * h, skew=skew)
    out = moe_experts_triton(*inputs, config=MoEConfig(block_m, 16, 16, 4, 1))
    ref = moe_experts_reference(*float64(*inputs))
    assert out.shape == ref.shape == (n, h)
    # Weights are scaled by 1 / sqrt(fan-in): every projection has unit-size outputs.
    torch.testing.assert_close(out.double(), ref, **tolerance(torch.float32, max(h, inter)))


def test_schedule_places_every_pair_once_in_its_experts_blocks():
    g = torch.Generator().manual_seed(3)
    experts, block_m = 6, 4
    index = torch.stack([torch.randperm(experts, generator=g)[:2] for _ in range(11)])
    plan = schedule(index, experts, block_m)
    n_pairs = index.numel()
    ids = plan.sorted_ids.long()
    real = ids < n_pairs
    assert sorted(ids[real].tolist()) == list(range(n_pairs))
    slot_expert = plan.block_expert.long().repeat_interleave(block_m)
    assert torch.equal(index.reshape(-1)[ids[real]], slot_expert[real])
    # Blocks past the end are marked with expert E and hold no pair.
    assert (~real[slot_expert == experts]).all()


def test_dispatch_keeps_cpu_on_reference():
    inputs = _inputs(9, 16, 8, 4, 2, "cpu")
    assert torch.equal(moe.moe_experts(*inputs), moe_experts_reference(*inputs))


# -- compiled, on a GPU -------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("n", [256, 1, 2048])
def test_gpu_moe_bf16_gemma_geometry(n):
    # DiffusionGemma 26B-A4B: hidden 2816, 128 experts of 704, top 8.
    inputs = _inputs(n, 2816, 704, 128, 8, "cuda", torch.bfloat16, seed=n)
    out = moe.moe_experts(*inputs)
    ref = moe_experts_reference(*float64(*inputs))
    assert (out.double() - ref).norm() / ref.norm() < 1e-2
