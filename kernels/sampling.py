"""Sampling over the vocabulary without a probability tensor.

DiffusionGemma's vocabulary has 262,144 entries: a [rows, V] float32 probability tensor is
a quarter of a gigabyte per 256-token canvas, written and read several times by the plain
softmax -> sample -> entropy -> argmax chain. Two fused operations replace it:

- `fused_sample(logits, temperature, seed, noise=None)`: one streaming pass per row gives
  the entropy of softmax(logits / T), the argmax and a sampled token. The sample uses the
  Gumbel-max trick, argmax(l / T - log(-log u)) with u uniform, which draws exactly from
  softmax(l / T); u comes from a counter-based generator (Philox at (seed, row * V + col)),
  so sampling needs no second pass. Given `noise` (u itself, [rows, V]) the kernel and the
  reference compute the same function, which is how the tests compare them.
- `soft_embeddings(logits, weight, scale)`: the self-conditioning input
  softmax(logits) @ weight * scale, the probabilities rebuilt tile by tile from each row's
  log-sum-exp inside the matmul.

Each has a `_reference` twin in plain torch with the same signature (the CPU path) and a
`_triton` host wrapper; the undecorated name dispatches.
"""

from __future__ import annotations

import functools

import torch

from ._runtime import KernelInputError, call_with_fallback, interpreting, use_triton

# -- fused sampler -------------------------------------------------------------------------


def fused_sample(
    logits: torch.Tensor, temperature: float, seed: torch.Tensor, noise: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """logits: [N, V]; seed: int64 [1] on the logits' device (a tensor, so CUDA graphs can
    replay with fresh seeds); noise: optional uniform [N, V] in [0, 1).
    Returns (sampled [N] int64, argmax [N] int64, entropy [N] float32) of softmax(logits / T)
    (the reference keeps float64 logits in float64: the tests' exact entropy)."""
    if use_triton(logits):
        return call_with_fallback(
            "fused_sample", fused_sample_triton, fused_sample_reference, logits, temperature, seed, noise
        )
    return fused_sample_reference(logits, temperature, seed, noise)


def fused_sample_reference(
    logits: torch.Tensor, temperature: float, seed: torch.Tensor, noise: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    scaled = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature  # float64 stays float64
    if noise is None:
        # Same distribution as the kernel's Philox stream, not the same numbers.
        generator = torch.Generator(device=logits.device).manual_seed(int(seed.reshape(-1)[0]))
        noise = torch.rand(scaled.shape, device=logits.device, generator=generator)
    sampled = (scaled - torch.log(-torch.log(noise.float()))).argmax(dim=-1)
    log_probs = torch.log_softmax(scaled, dim=-1)
    probs = log_probs.exp()
    # A -inf logit has p log p = 0, not 0 * -inf.
    entropy = -torch.where(probs > 0, probs * log_probs, 0.0).sum(dim=-1)
    return sampled, scaled.argmax(dim=-1), entropy


def fused_sample_triton(
    logits: torch.Tensor, temperature: float, seed: torch.Tensor, noise: torch.Tensor | None = None,
    *, block: int = 2048, splits: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Host wrapper. `splits` cuts each row's vocabulary into chunks run by separate programs
    (a 256-row canvas alone would leave most of an H100's 132 SMs idle); by default enough
    chunks for about four programs per SM."""
    from . import _sampling_triton as k

    if logits.dim() != 2:
        raise KernelInputError(f"logits must be [N, V], got {tuple(logits.shape)}")
    if noise is not None and noise.shape != logits.shape:
        raise KernelInputError(f"noise {tuple(noise.shape)} must match logits {tuple(logits.shape)}")
    logits = _unit_stride_rows(logits)
    n, v = logits.shape
    if splits is None:
        splits = max(1, min(-(-4 * _sm_count(logits.device) // max(n, 1)), v // (4 * block)))
    chunk = -(-v // splits)
    chunk = -(-chunk // block) * block  # whole tiles per chunk
    splits = -(-v // chunk)
    part_stats = torch.empty(n, splits, 5, dtype=torch.float32, device=logits.device)
    part_index = torch.empty(n, splits, 2, dtype=torch.int64, device=logits.device)
    noise_arg = _unit_stride_rows(noise) if noise is not None else logits
    seed_arg = seed.reshape(-1)[:1].to(device=logits.device, dtype=torch.int64)
    k._sample_partials_kernel[(n, splits)](
        logits, noise_arg, seed_arg, part_stats, part_index,
        v, chunk,
        logits.stride(0), noise_arg.stride(0),
        float(temperature),
        HAS_NOISE=noise is not None, BLOCK=block,
    )
    sampled = torch.empty(n, dtype=torch.int64, device=logits.device)
    argmax = torch.empty(n, dtype=torch.int64, device=logits.device)
    entropy = torch.empty(n, dtype=torch.float32, device=logits.device)
    k._sample_combine_kernel[(n,)](
        part_stats, part_index, sampled, argmax, entropy, splits, v,
        BLOCK_SPLITS=max(2, _next_pow2(splits)),
    )
    return sampled, argmax, entropy


def fused_sampling_available(logits: torch.Tensor) -> bool:
    """Whether `fused_sample` runs the kernel for these logits (the sampler keeps its own
    CPU draw otherwise, to leave CPU results unchanged)."""
    return use_triton(logits)


# -- self-conditioning input ---------------------------------------------------------------


def soft_embeddings(logits: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """softmax(logits) @ weight * scale: logits [..., V], weight [V, H] -> [..., H] in weight's dtype."""
    if use_triton(logits, weight):
        return call_with_fallback(
            "soft_embeddings", soft_embeddings_triton, soft_embeddings_reference, logits, weight, scale
        )
    return soft_embeddings_reference(logits, weight, scale)


def soft_embeddings_reference(logits: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    # float32 softmax (float64 for float64 logits: the tests' exact reference)
    probs = torch.softmax(logits, dim=-1, dtype=torch.promote_types(logits.dtype, torch.float32)).to(weight.dtype)
    return (probs @ weight) * scale


def soft_embeddings_triton(
    logits: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor,
    *, block_m: int = 64, block_n: int = 128, block_k: int = 64, splits: int | None = None,
    num_warps: int = 4, num_stages: int = 3,
) -> torch.Tensor:
    """Host wrapper: a log-sum-exp pass over the rows, then a split-V matmul whose partial
    sums [splits, N, H] (float32) are added up here. Splitting V gives the few row tiles of
    a canvas enough programs to fill the GPU."""
    from . import _sampling_triton as k

    lead, v = logits.shape[:-1], logits.shape[-1]
    if weight.shape[0] != v:
        raise KernelInputError(f"weight {tuple(weight.shape)} does not match a vocabulary of {v}")
    rows = _unit_stride_rows(logits.reshape(-1, v))
    n, h = rows.shape[0], weight.shape[1]
    lse = torch.empty(n, dtype=torch.float32, device=rows.device)
    k._row_logsumexp_kernel[(n,)](rows, lse, v, rows.stride(0), BLOCK=2048)
    tiles = -(-n // block_m) * -(-h // block_n)
    if splits is None:
        splits = max(1, min(-(-4 * _sm_count(rows.device) // tiles), v // (8 * block_k)))
    chunk = -(-(-(-v // splits)) // block_k) * block_k
    splits = -(-v // chunk)
    partial = torch.empty(splits, n, h, dtype=torch.float32, device=rows.device)
    k._soft_embed_kernel[(tiles, splits)](
        rows, lse, weight, partial,
        n, v, h, chunk,
        rows.stride(0), weight.stride(0), weight.stride(1),
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, DOT_FP32=interpreting() or weight.dtype == torch.float32,
        num_warps=num_warps, num_stages=num_stages,
    )
    # Rounded to the weights' dtype before scaling, as the reference's matmul output is.
    out = partial.sum(dim=0).to(weight.dtype) * scale
    return out.reshape(*lead, h)


# -- helpers -------------------------------------------------------------------------------


def _unit_stride_rows(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


def _next_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return _cuda_sm_count(device.index if device.index is not None else torch.cuda.current_device())
    return 2  # the interpreter: keep test grids small


@functools.cache
def _cuda_sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count
