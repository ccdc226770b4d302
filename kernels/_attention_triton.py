"""Triton kernel behind `attention.py`; imported only when it is launched.

Flash-attention style: one program owns a block of query rows of one KV head (the rows of
all the query heads that share it, so each key/value tile is loaded once for the group),
streams the cached keys and then the canvas keys with an online softmax, and writes the
normalized output. No mask: the decoder is bidirectional over the canvas and the cache.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _attend(
    acc, m_i, l_i, q,
    k_base, v_base, length, stride_k_s, stride_v_s,
    offs_d, d_ok,
    BLOCK_N: tl.constexpr, DOT_FP32: tl.constexpr,
):
    """Fold keys/values [0, length) of one source (cache or canvas) into the running output."""
    for start in range(0, length, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_ok = offs_n < length
        kv_mask = n_ok[:, None] & d_ok[None, :]
        k = tl.load(k_base + offs_n[:, None].to(tl.int64) * stride_k_s + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_base + offs_n[:, None].to(tl.int64) * stride_v_s + offs_d[None, :], mask=kv_mask, other=0.0)
        if DOT_FP32:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        # unit scale: q and k are RMS-normed. "ieee": float32 operands (DOT_FP32) get a true
        # fp32 dot, not TF32; bf16 operands ignore the option.
        scores = tl.dot(q, tl.trans(k), input_precision="ieee")
        scores = tl.where(n_ok[None, :], scores, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(scores, axis=1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(scores - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision="ieee")
        m_i = m_new
    return acc, m_i, l_i


@triton.jit
def _canvas_attention_kernel(
    # pointers
    q_ptr, cached_k_ptr, cached_v_ptr, k_ptr, v_ptr, out_ptr,
    # sizes
    C, S, D, GROUP,
    # strides (the last dimension of every tensor is contiguous)
    stride_q_b, stride_q_h, stride_q_c,
    stride_ck_b, stride_ck_h, stride_ck_s,
    stride_cv_b, stride_cv_h, stride_cv_s,
    stride_k_b, stride_k_h, stride_k_c,
    stride_v_b, stride_v_h, stride_v_c,
    stride_o_b, stride_o_h, stride_o_c,
    # meta-parameters
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    DOT_FP32: tl.constexpr,
):
    pid_m = tl.program_id(0)
    kv_head = tl.program_id(1).to(tl.int64)
    batch = tl.program_id(2).to(tl.int64)
    # Rows run over (query head in the group, canvas position).
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < GROUP * C
    head = kv_head * GROUP + rows // C
    pos = rows % C
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D

    q_rows = q_ptr + batch * stride_q_b + head * stride_q_h + pos * stride_q_c
    q = tl.load(q_rows[:, None] + offs_d[None, :], mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    if DOT_FP32:
        q = q.to(tl.float32)

    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)
    # Two sources, two pointers: the cached prompt (read-only) and the canvas, never concatenated.
    acc, m_i, l_i = _attend(
        acc, m_i, l_i, q,
        cached_k_ptr + batch * stride_ck_b + kv_head * stride_ck_h,
        cached_v_ptr + batch * stride_cv_b + kv_head * stride_cv_h,
        S, stride_ck_s, stride_cv_s, offs_d, d_ok, BLOCK_N, DOT_FP32,
    )
    acc, m_i, l_i = _attend(
        acc, m_i, l_i, q,
        k_ptr + batch * stride_k_b + kv_head * stride_k_h,
        v_ptr + batch * stride_v_b + kv_head * stride_v_h,
        C, stride_k_c, stride_v_c, offs_d, d_ok, BLOCK_N, DOT_FP32,
    )
    out = acc / l_i[:, None]
    out_rows = out_ptr + batch * stride_o_b + head * stride_o_h + pos * stride_o_c
    tl.store(out_rows[:, None] + offs_d[None, :], out.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & d_ok[None, :])
