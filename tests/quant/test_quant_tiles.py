"""The quantized matmul's tile tables, pruning and untuned defaults (plain Python, no GPU)."""

import types

import pytest
import torch

from dg_lsp.kernels import quant_matmul, quant_tiles
from dg_lsp.kernels.quant_format import unpack_int4
from dg_lsp.kernels.quant_tiles import (
    AMPERE_SHARED_BYTES,
    HOPPER_SHARED_BYTES,
    candidate_tiles,
    default_tile,
    estimated_shared_bytes,
)


@pytest.mark.parametrize("block_m", [16, 64, 128])
def test_each_regime_times_six_to_eight_candidates(block_m):
    tiles = quant_tiles.tiles_for(block_m)
    assert 6 <= len(tiles) <= 8 and len(set(tiles)) == len(tiles)
    assert len(candidate_tiles("int8", 2816, block_m, HOPPER_SHARED_BYTES)) == len(tiles)


@pytest.mark.parametrize("fmt,group", [("int4", 128), ("int4", 64), ("fp8", 704), ("fp8", 2816), ("int8", 2112)])
@pytest.mark.parametrize("block_m", [16, 64, 128])
@pytest.mark.parametrize("limit", [HOPPER_SHARED_BYTES, AMPERE_SHARED_BYTES, 60_000])
def test_candidates_divide_the_group_and_fit(fmt, group, block_m, limit):
    for tile in candidate_tiles(fmt, group, block_m, limit):
        if fmt != "int8":
            assert group % tile["BLOCK_K"] == 0
        fits = estimated_shared_bytes(fmt, block_m, tile["BLOCK_N"], tile["BLOCK_K"], tile["num_stages"]) <= limit
        assert fits or tile == quant_tiles.fallback_tile(fmt, group)  # only the last resort may not


def test_shared_memory_limit_prunes_the_deep_tiles():
    wide = candidate_tiles("int8", 2816, 128, HOPPER_SHARED_BYTES)
    narrow = candidate_tiles("int8", 2816, 128, AMPERE_SHARED_BYTES)
    assert len(narrow) < len(wide)
    assert all(t in wide for t in narrow)


@pytest.mark.parametrize("fmt,group,block_k", [("int4", 48, 16), ("int4", 96, 32), ("int4", 16, 16), ("fp8", 96, 32),
                                               ("fp8", 32, 32)])
def test_groups_no_listed_tile_divides_fall_back_to_their_largest_power_of_two(fmt, group, block_k):
    (tile,) = candidate_tiles(fmt, group, 64, HOPPER_SHARED_BYTES)
    assert tile["BLOCK_K"] == block_k and group % block_k == 0


def test_fp8_needs_k_blocks_of_32():
    x = types.SimpleNamespace(device=torch.device("cpu"))
    assert quant_tiles.min_block_k("fp8") == 32
    with pytest.MonkeyPatch.context() as mp:  # pretend the tensor is on a CUDA GPU with Triton
        mp.setattr(quant_matmul, "use_triton", lambda t: True)
        mp.setattr(quant_matmul._runtime, "device_capability", lambda device: (9, 0))
        assert quant_matmul.kernels_usable(x, "fp8", 96)
        assert not quant_matmul.kernels_usable(x, "fp8", 48)  # would need 16-deep fp8 dots
        assert quant_matmul.kernels_usable(x, "int4", 48)


def test_default_tile_is_the_first_candidate():
    assert default_tile("int4", 128, 64, HOPPER_SHARED_BYTES) == quant_tiles.CANVAS_TILES[0].as_kwargs()
    assert default_tile("int8", 2816, 128, HOPPER_SHARED_BYTES) == quant_tiles.PROMPT_TILES[0].as_kwargs()
    assert default_tile("int4", 64, 16, HOPPER_SHARED_BYTES)["BLOCK_K"] == 64  # 128 does not divide the group


@pytest.mark.parametrize(("rows", "block_m"), [(1, 16), (16, 16), (17, 64), (256, 64), (257, 128), (4096, 128)])
def test_rows_per_program(rows, block_m):
    assert quant_matmul.block_m_for(rows) == block_m


def test_grouped_rows_per_program_follow_the_pairs_per_expert():
    assert quant_matmul.grouped_block_m(256 * 8, 128) == 16  # a canvas: 16 pairs per expert
    assert quant_matmul.grouped_block_m(512 * 8, 128) == 64  # a prompt chunk: 32
    assert quant_matmul.grouped_block_m(5, 0) == 16


def test_the_autotuner_prunes_with_the_tables_and_keys_on_block_m():
    from dg_lsp.kernels import _quant_matmul_triton as impl

    tuner = impl._autotuned_kernel
    assert {"BLOCK_M", "GROUP", "FORMAT", "GROUPED", "M_BUCKET", "N", "K"} <= set(tuner.keys)
    x = torch.empty(64, 704)
    for fmt, group, block_m in (("int4", 64, 16), ("fp8", 704, 64), ("int8", 704, 128), ("int4", 48, 64)):
        args = {"x_ptr": x, "GROUP": group}
        kept = quant_tiles.prune_configs(tuner.configs, args, FORMAT=quant_tiles.FORMAT_IDS[fmt], BLOCK_M=block_m)
        got = [{**c.kwargs, "num_warps": c.num_warps, "num_stages": c.num_stages} for c in kept]
        want = candidate_tiles(fmt, group, block_m, HOPPER_SHARED_BYTES)
        assert sorted(map(sorted, map(dict.items, got))) == sorted(map(sorted, map(dict.items, want)))


def test_autotuning_is_off_with_dg_lsp_autotune_0(monkeypatch):
    cuda = types.SimpleNamespace(device=torch.device("cuda"))
    monkeypatch.delenv("DG_LSP_AUTOTUNE", raising=False)
    assert quant_matmul.autotuning(cuda)
    monkeypatch.setenv("DG_LSP_AUTOTUNE", "0")
    assert not quant_matmul.autotuning(cuda)
    assert not quant_matmul.autotuning(types.SimpleNamespace(device=torch.device("cpu")))


def test_bf16_bit_pattern_unpack_of_int4_is_exact():
    """The compiled kernel's unpack (0x4300 | nibble is the bfloat16 of 128 + nibble, minus 136),
    written in torch: equal to the format's unpack for every byte (the interpreter cannot
    bitcast to bfloat16, so the kernel runs it only on a GPU)."""
    packed = torch.arange(256, dtype=torch.int32).to(torch.uint8).reshape(16, 16)

    def as_bf16(nibbles):
        return (nibbles.to(torch.int16) | 0x4300).view(torch.bfloat16) - 136

    low, high = as_bf16(packed & 0xF), as_bf16(packed >> 4)
    unpacked = torch.stack([low, high], dim=-1).flatten(-2)
    assert torch.equal(unpacked.float(), unpack_int4(packed).float())
