"""The fused sampler and the self-conditioning input against their torch reference twins."""

import math

import pytest
import torch

from dg_lsp.kernels import sampling
from dg_lsp.kernels.sampling import (
    fused_sample_reference,
    fused_sample_triton,
    soft_embeddings_reference,
    soft_embeddings_triton,
)

from ._marks import kernel_device, needs_cuda, needs_triton
from ._tolerances import tolerance

pytestmark = needs_triton


def _logits(rows: int, vocab: int, device: str, generator: torch.Generator) -> torch.Tensor:
    logits = torch.randn(rows, vocab, generator=generator) * 4
    logits[0, 3] = float("-inf")  # a banned token: p log p must count as 0
    logits[-1, [5, vocab - 2]] = logits[-1].max() + 1  # an exact tie: argmax takes the first
    return logits.to(device)


@pytest.mark.parametrize(("rows", "vocab", "splits", "temperature"), [(3, 1000, 1, 0.7), (5, 777, 3, 1.3), (1, 129, 2, 1.0)])
def test_fused_sample_with_given_noise_matches_reference(rows, vocab, splits, temperature):
    g = torch.Generator().manual_seed(rows * vocab)
    device = kernel_device()
    logits = _logits(rows, vocab, device, g)
    noise = torch.rand(rows, vocab, generator=g).to(device)
    seed = torch.tensor([7], device=device)
    sampled, argmax, entropy = fused_sample_triton(logits, temperature, seed, noise, block=128, splits=splits)
    # Token ids against the float32 reference (the same rounding of l / T, so the same ties);
    # the entropy against the float64 one: a sum over the vocabulary, of size up to log V.
    ref_sampled, ref_argmax, _ = fused_sample_reference(logits, temperature, seed, noise)
    _, _, ref_entropy = fused_sample_reference(logits.double(), temperature, seed, noise.double())
    assert torch.equal(sampled, ref_sampled)
    assert torch.equal(argmax, ref_argmax)
    assert argmax[-1].item() == 5
    tol = tolerance(torch.float32, vocab, magnitude=math.log(vocab))
    torch.testing.assert_close(entropy.double(), ref_entropy, **tol)
    assert torch.isfinite(entropy).all()


def test_fused_sample_seeded_draws_follow_softmax_and_repeat():
    device = kernel_device()
    rows, vocab = 256, 6
    row_logits = torch.tensor([2.0, 1.0, 0.0, -1.0, 0.5, float("-inf")])
    logits = row_logits.repeat(rows, 1).to(device)  # every row an independent draw from one distribution
    seed = torch.tensor([12345], device=device)
    sampled, _, _ = fused_sample_triton(logits, 1.0, seed, block=16)
    counts = torch.bincount(sampled.cpu(), minlength=vocab).double()
    expected = torch.softmax(row_logits.double(), dim=0) * rows
    sigma = (expected * (1 - expected / rows)).sqrt().clamp_min(1.0)
    assert counts[5] == 0  # a -inf logit is never drawn
    assert ((counts - expected).abs() <= 4.5 * sigma).all(), (counts, expected)
    # Counter-based: the same seed repeats the draws, another seed changes them.
    few = logits[:16]
    again, _, _ = fused_sample_triton(few, 1.0, seed, block=16)
    other, _, _ = fused_sample_triton(few, 1.0, seed + 1, block=16)
    assert torch.equal(sampled[:16], again)
    assert not torch.equal(again, other)


def test_reference_seeded_draws_follow_softmax():
    rows = 20_000
    row_logits = torch.tensor([1.5, 0.0, -0.5, 0.25])
    sampled, _, _ = fused_sample_reference(row_logits.repeat(rows, 1), 0.8, torch.tensor([3]))
    freq = torch.bincount(sampled, minlength=4).double() / rows
    assert torch.allclose(freq, torch.softmax(row_logits.double() / 0.8, dim=0), atol=0.015)


@pytest.mark.parametrize(("lead", "vocab", "hidden", "dtype", "splits"), [
    ((2, 3), 777, 48, torch.float32, 1),
    ((5,), 300, 40, torch.bfloat16, 3),
])
def test_soft_embeddings_matches_reference(lead, vocab, hidden, dtype, splits):
    g = torch.Generator().manual_seed(vocab)
    device = kernel_device()
    logits = (torch.randn(*lead, vocab, generator=g) * 3).to(device)
    weight = torch.randn(vocab, hidden, generator=g).to(device, dtype)
    scale = torch.tensor(math.sqrt(hidden), dtype=dtype)
    out = soft_embeddings_triton(logits, weight, scale, block_m=16, block_n=32, block_k=64, splits=splits)
    assert out.shape == (*lead, hidden) and out.dtype == soft_embeddings_reference(logits, weight, scale).dtype == dtype
    ref = soft_embeddings_reference(logits.double(), weight.double(), scale.double())
    # A probability-weighted average of unit-variance rows, times the scale.
    magnitude = float(scale)
    torch.testing.assert_close(out.double(), ref, **tolerance(dtype, vocab, magnitude=magnitude))


def test_dispatch_keeps_cpu_on_reference():
    logits = torch.randn(4, 50)
    seed = torch.tensor([1])
    for got, want in zip(sampling.fused_sample(logits, 0.9, seed), fused_sample_reference(logits, 0.9, seed)):
        assert torch.equal(got, want)
    weight, scale = torch.randn(50, 8), torch.tensor(2.0)
    assert torch.equal(sampling.soft_embeddings(logits, weight, scale), soft_embeddings_reference(logits, weight, scale))


# -- compiled, on a GPU -------------------------------------------------------------------


@needs_cuda
def test_gpu_fused_sample_full_vocabulary():
    g = torch.Generator(device="cuda").manual_seed(0)
    rows, vocab = 256, 262_144
    logits = torch.randn(rows, vocab, device="cuda", generator=g) * 5
    noise = torch.rand(rows, vocab, device="cuda", generator=g)
    seed = torch.tensor([99], device="cuda")
    sampled, argmax, entropy = sampling.fused_sample(logits, 0.6, seed, noise)
    ref_sampled, ref_argmax, ref_entropy = fused_sample_reference(logits, 0.6, seed, noise)
    assert torch.equal(argmax, ref_argmax)
    torch.testing.assert_close(entropy, ref_entropy, rtol=1e-4, atol=1e-4)
    # GPU division is not correctly rounded: a near-tie may flip, so compare scores, not ids.
    perturbed = logits / 0.6 - torch.log(-torch.log(noise))
    picked = perturbed.gather(1, sampled[:, None]).squeeze(1)
    torch.testing.assert_close(picked, perturbed.gather(1, ref_sampled[:, None]).squeeze(1), rtol=0, atol=1e-4)


@needs_cuda
def test_gpu_soft_embeddings_bf16():
    g = torch.Generator(device="cuda").manual_seed(1)
    logits = (torch.randn(256, 262_144, device="cuda", generator=g) * 4).to(torch.bfloat16)
    weight = (torch.randn(262_144, 2816, device="cuda", generator=g) * 0.03).to(torch.bfloat16)
    scale = torch.tensor(math.sqrt(2816), dtype=torch.bfloat16)
    out = sampling.soft_embeddings(logits, weight, scale).float()
    ref = soft_embeddings_reference(logits.double(), weight.double(), scale.double()).float()
    assert (out - ref).norm() / ref.norm() < 1e-2
