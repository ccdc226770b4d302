"""Triton kernels behind `sampling.py`; imported only when a kernel is launched.

Every kernel streams one row of the vocabulary in tiles and keeps per-lane running
statistics (max, sum of exponentials, sum of exponential-weighted logits), so no
[rows, V] probability tensor is ever written. Lanes are combined once at the end.
"""

from __future__ import annotations

import triton
import triton.language as tl

# Finite stand-in for -inf as the running max: keeps exp(m_old - m_new) free of inf - inf.
# A constexpr: compiled kernels may read only constexpr globals (a plain float is a NameError).
_NEG_BIG = tl.constexpr(-1.0e38)


@triton.jit
def _lane_update(m, z, s, logit):
    """Fold one tile into per-lane softmax statistics, rescaled to the new running max:
    z = sum exp(l - m), s = sum exp(l - m) * (l - m)."""
    m_new = tl.maximum(m, logit)
    alpha = tl.exp(m - m_new)
    e = tl.exp(logit - m_new)
    shifted = tl.where(e > 0, logit - m_new, 0.0)  # -inf logits contribute 0, not 0 * -inf
    s = alpha * (s + (m - m_new) * z) + e * shifted
    z = alpha * z + e
    return m_new, z, s


@triton.jit
def _lanes_combine(m, z, s):
    """Per-lane statistics -> one (max, sum exp, sum exp * shifted logit) for the row."""
    row_max = tl.max(m, axis=0)
    w = tl.exp(m - row_max)
    row_z = tl.sum(w * z, axis=0)
    row_s = tl.sum(w * (s + (m - row_max) * z), axis=0)
    return row_max, row_z, row_s


@triton.jit
def _first_argmax(value, index, n_total):
    """(max, lowest index reaching it): torch.argmax's choice among ties."""
    best = tl.max(value, axis=0)
    return best, tl.min(tl.where(value == best, index, n_total), axis=0)


@triton.jit
def _sample_partials_kernel(
    # pointers
    logits_ptr, noise_ptr, seed_ptr,
    part_stats_ptr, part_index_ptr,
    # sizes
    V, chunk,
    # strides
    stride_row, stride_noise_row,
    # meta-parameters
    temperature,
    HAS_NOISE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """One (row, vocabulary chunk): softmax statistics, argmax and the Gumbel-max sample.
    Writes stats [max, z, s, argmax value, gumbel value] and indices [argmax, sample]."""
    row = tl.program_id(0).to(tl.int64)
    split = tl.program_id(1)
    n_splits = tl.num_programs(1)
    lanes = tl.arange(0, BLOCK)
    start = split * chunk
    end = tl.minimum(start + chunk, V)
    if HAS_NOISE:
        seed = 0
    else:
        seed = tl.load(seed_ptr)

    m = tl.full((BLOCK,), _NEG_BIG, tl.float32)
    z = tl.zeros((BLOCK,), tl.float32)
    s = tl.zeros((BLOCK,), tl.float32)
    # Column indices in int32 (a vocabulary is far below 2**31): with int64 lanes the 2048-wide
    # tile needed every one of the 255 registers and spilled.
    arg_index = tl.zeros((BLOCK,), tl.int32)
    gumbel_best = tl.full((BLOCK,), float("-inf"), tl.float32)
    gumbel_index = tl.zeros((BLOCK,), tl.int32)
    for col0 in range(start, end, BLOCK):
        cols = col0 + lanes
        ok = cols < end
        logit = tl.load(logits_ptr + row * stride_row + cols, mask=ok, other=float("-inf")).to(tl.float32)
        logit = logit / temperature
        # Strictly greater: within a lane the earliest column wins a tie, as in torch.argmax.
        arg_index = tl.where(logit > m, cols, arg_index)
        m, z, s = _lane_update(m, z, s, logit)
        if HAS_NOISE:
            u = tl.load(noise_ptr + row * stride_noise_row + cols, mask=ok, other=0.5)
        else:
            u = tl.rand(seed, row * V + cols)  # counter-based: the same (seed, row, col) gives the same draw
        perturbed = tl.where(ok, logit - tl.log(-tl.log(u)), float("-inf"))  # Gumbel-max trick
        gumbel_index = tl.where(perturbed > gumbel_best, cols, gumbel_index)
        gumbel_best = tl.maximum(gumbel_best, perturbed)

    row_max, row_z, row_s = _lanes_combine(m, z, s)
    arg_value, arg_at = _first_argmax(m, arg_index, V)
    gumbel_value, gumbel_at = _first_argmax(gumbel_best, gumbel_index, V)
    base = (row * n_splits + split) * 5
    tl.store(part_stats_ptr + base + 0, row_max)
    tl.store(part_stats_ptr + base + 1, row_z)
    tl.store(part_stats_ptr + base + 2, row_s)
    tl.store(part_stats_ptr + base + 3, arg_value)
    tl.store(part_stats_ptr + base + 4, gumbel_value)
    tl.store(part_index_ptr + (row * n_splits + split) * 2 + 0, arg_at)
    tl.store(part_index_ptr + (row * n_splits + split) * 2 + 1, gumbel_at)


@triton.jit
def _sample_combine_kernel(
    # pointers
    part_stats_ptr, part_index_ptr, sampled_ptr, argmax_ptr, entropy_ptr,
    # sizes
    n_splits, V,
    # meta-parameters
    BLOCK_SPLITS: tl.constexpr,
):
    """One row: merge the chunks' partial results (chunks are in column order, so the lowest
    index among equal maxima is still the first occurrence)."""
    row = tl.program_id(0).to(tl.int64)
    split = tl.arange(0, BLOCK_SPLITS)
    ok = split < n_splits
    stats = part_stats_ptr + (row * n_splits + split) * 5
    index = part_index_ptr + (row * n_splits + split) * 2
    m = tl.load(stats + 0, mask=ok, other=_NEG_BIG)
    z = tl.load(stats + 1, mask=ok, other=0.0)
    s = tl.load(stats + 2, mask=ok, other=0.0)
    arg_value = tl.load(stats + 3, mask=ok, other=float("-inf"))
    gumbel_value = tl.load(stats + 4, mask=ok, other=float("-inf"))
    arg_at = tl.load(index + 0, mask=ok, other=V)
    gumbel_at = tl.load(index + 1, mask=ok, other=V)

    _, row_z, row_s = _lanes_combine(m, z, s)
    # H = -sum p (l - m - log z) = log z - s / z
    tl.store(entropy_ptr + row, tl.log(row_z) - row_s / row_z)
    best = tl.max(arg_value, axis=0)
    tl.store(argmax_ptr + row, tl.min(tl.where(arg_value == best, arg_at, V), axis=0))
    best = tl.max(gumbel_value, axis=0)
    tl.store(sampled_ptr + row, tl.min(tl.where(gumbel_value == best, gumbel_at, V), axis=0))


@triton.jit
def _row_logsumexp_kernel(
    # pointers
    logits_ptr, lse_ptr,
    # sizes
    V,
    # strides
    stride_row,
    # meta-parameters
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    m = tl.full((BLOCK,), _NEG_BIG, tl.float32)
    z = tl.zeros((BLOCK,), tl.float32)
    s = tl.zeros((BLOCK,), tl.float32)
    for col0 in range(0, V, BLOCK):
        cols = col0 + lanes
        logit = tl.load(logits_ptr + row * stride_row + cols, mask=cols < V, other=float("-inf")).to(tl.float32)
        m, z, s = _lane_update(m, z, s, logit)
    row_max, row_z, _ = _lanes_combine(m, z, s)
    tl.store(lse_ptr + row, row_max + tl.log(row_z))


@triton.jit
def _soft_embed_kernel(
    # pointers
    logits_ptr, lse_ptr, weight_ptr, partial_ptr,
    # sizes
    N, V, H, chunk,
    # strides
    stride_logit_row, stride_weight_v, stride_weight_h,
    # meta-parameters
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    DOT_FP32: tl.constexpr,
):
    """partial[split, rows, cols] = softmax(logits[rows]) @ weight[chunk, cols], the
    probabilities made tile by tile from the row's log-sum-exp and never stored."""
    pid_mn = tl.program_id(0)
    split = tl.program_id(1)
    n_tiles_n = tl.cdiv(H, BLOCK_N)
    # H tiles vary fastest: neighbouring programs share a logits tile through L2.
    pid_m = pid_mn // n_tiles_n
    pid_n = pid_mn % n_tiles_n
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    col_ok = cols < H
    lse = tl.load(lse_ptr + rows, mask=row_ok, other=0.0)
    k_start = split * chunk
    k_end = tl.minimum(k_start + chunk, V)

    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for k0 in range(k_start, k_end, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < k_end
        logit = tl.load(
            logits_ptr + rows[:, None].to(tl.int64) * stride_logit_row + ks[None, :],
            mask=row_ok[:, None] & k_ok[None, :], other=float("-inf"),
        ).to(tl.float32)
        prob = tl.exp(logit - lse[:, None])
        w = tl.load(
            weight_ptr + ks[:, None].to(tl.int64) * stride_weight_v + cols[None, :] * stride_weight_h,
            mask=k_ok[:, None] & col_ok[None, :], other=0.0,
        )
        if DOT_FP32:
            acc += tl.dot(prob, w.to(tl.float32), input_precision="ieee")  # no TF32 on the GPU
        else:
            # The reference rounds the probabilities to the weights' dtype before its matmul.
            acc += tl.dot(prob.to(w.dtype), w)
    out = partial_ptr + (split * N + rows[:, None]).to(tl.int64) * H + cols[None, :]
    tl.store(out, acc, mask=row_ok[:, None] & col_ok[None, :])
