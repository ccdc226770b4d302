"""The stored layout: round trips within the rounding bound, nibble order, odd shapes."""

import pytest
import torch

from dg_lsp.kernels.quant_format import (
    FP8_MAX,
    dequantize_weight,
    int4_group_size,
    quantize_activations_fp8,
    quantize_weight,
    unpack_int4,
)


@pytest.mark.parametrize("shape", [(3, 64), (41, 96), (2, 5, 32)])
@pytest.mark.parametrize("fmt", ["int8", "int4"])
def test_integer_round_trip_error_is_at_most_half_a_step(fmt, shape):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    q, s = quantize_weight(w, fmt, group_size=32)
    err = (dequantize_weight(q, s, fmt) - w).abs()
    step = s[..., None] if fmt == "int8" else s.repeat_interleave(32, dim=-1)
    assert torch.all(err <= step / 2 + 1e-6)


def test_fp8_round_trip_is_within_e4m3_precision():
    w = torch.randn(37, 80, generator=torch.Generator().manual_seed(2))
    q, s = quantize_weight(w, "fp8")
    assert q.dtype == torch.float8_e4m3fn and s.shape == (37,)
    err = (dequantize_weight(q, s, "fp8") - w).abs()
    # 3 mantissa bits: relative 2**-4 for normals; subnormals (below 2**-6 * s) step by 2**-9 * s.
    assert torch.all(err <= w.abs() * 2**-4 + s[:, None] * 2**-10 + 1e-7)


def test_int4_packs_column_2j_in_the_low_nibble():
    w = torch.tensor([[7.0, -7.0, 0.0, 3.0]])  # max 7 -> scale 1, so q = w
    q, s = quantize_weight(w, "int4", group_size=4)
    assert torch.allclose(s, torch.ones(1, 1))
    assert q.tolist() == [[(7 + 8) | ((-7 + 8) << 4), (0 + 8) | ((3 + 8) << 4)]]
    assert unpack_int4(q).tolist() == [[7, -7, 0, 3]]


def test_int4_group_size_falls_back_to_a_common_divisor():
    assert int4_group_size(2816, 128) == 128
    assert int4_group_size(96, 128) == 32
    assert int4_group_size(33, 128) is None


def test_fp8_activations_are_scaled_per_token():
    x = torch.randn(5, 16) * torch.arange(1, 6)[:, None]
    q, s = quantize_activations_fp8(x)
    assert torch.allclose(q.float().abs().amax(-1), torch.full((5,), FP8_MAX))
    assert torch.allclose(s, x.abs().amax(-1) / FP8_MAX)
