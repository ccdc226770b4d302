"""Tile configurations of the quantized matmul: which the dispatch may choose, and which fit.

Plain Python (Triton is imported only to build `triton.Config`s), so the host wrappers, the
autotuner's pruning and the CI compile check (tests/kernels/_compile_for_gpu.py) share one
table and one shared-memory estimate.

Rows arrive in two regimes. A canvas (16-256 rows, BLOCK_M 16-64) is weight-bound: each
weight byte is read once, so the tiles are narrow along N (many programs to spread the weight
over the SMs) and deep along K with several pipeline stages (many bytes in flight). A prompt
chunk (BLOCK_M 128) does more arithmetic per weight byte: wider tiles, eight warps.

Constraints a configuration must meet, checked by `prune_configs`:

- int4: BLOCK_K divides the group size (one scale per column and K block, applied after the
  dot); fp8: BLOCK_K divides K (no K tail). `GROUP` is the group size for int4 and K for the
  per-channel formats, so one rule covers both; int8 masks its K tail and never prunes on K.
  Groups that no listed BLOCK_K divides get `FALLBACK`, with BLOCK_K the largest power of two
  dividing the group (16 at least: `quant_matmul.kernels_usable` refuses the rest).
- the pipelined tiles fit the device's shared memory (`estimated_shared_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_DOT = 16  # tl.dot on a GPU needs every block dimension >= 16
FORMAT_IDS = {"int8": 0, "int4": 1, "fp8": 2}
PROMPT_BLOCK_M = 128


@dataclass(frozen=True)
class Tile:
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int

    def as_kwargs(self, block_k: int | None = None) -> dict[str, int]:
        return {"BLOCK_N": self.block_n, "BLOCK_K": block_k or self.block_k, "num_warps": self.num_warps,
                "num_stages": self.num_stages}


# Per regime, six candidates; the first is the untuned default (DG_LSP_AUTOTUNE=0). Wide
# tiles (BLOCK_N 128) get eight warps: with four, 128 x 128 tiles spill registers and
# 128 x 64 ones use all 255 (found by tests/kernels/_compile_for_gpu.py).
CANVAS_TILES = (
    Tile(64, 128, 4, 4), Tile(64, 64, 4, 4), Tile(64, 128, 4, 3),
    Tile(64, 256, 4, 3), Tile(128, 64, 8, 4), Tile(128, 128, 8, 3),
)
PROMPT_TILES = (
    Tile(128, 64, 8, 3), Tile(128, 128, 8, 3), Tile(128, 128, 8, 4),
    Tile(128, 64, 8, 4), Tile(64, 128, 4, 3), Tile(64, 64, 4, 4),
)
# The fallback, when no candidate divides the group or fits: BLOCK_K becomes the largest power
# of two dividing the group (16, 32 or 64).
FALLBACK = Tile(64, 16, 4, 4)


def tiles_for(block_m: int) -> tuple[Tile, ...]:
    return PROMPT_TILES if block_m >= PROMPT_BLOCK_M else CANVAS_TILES


def largest_pow2_divisor(n: int, cap: int) -> int:
    b = 1
    while b * 2 <= cap and n % (b * 2) == 0:
        b *= 2
    return b


def estimated_shared_bytes(fmt: str, block_m: int, block_n: int, block_k: int, num_stages: int,
                           out_bytes: int = 2) -> int:
    """Shared memory a configuration needs, from above: `num_stages` buffers of the x tile and
    the (packed) weight tile, which the software pipeline keeps in flight, and the output tile
    (bf16 unless `out_bytes` says otherwise), which the store's layout change stages. The CI
    compile check asserts that every compiled configuration stays within this estimate (Triton
    3.9 needs 45-98% of it)."""
    x_bytes = 1 if fmt == "fp8" else 2
    w_bytes = block_n * block_k // 2 if fmt == "int4" else block_n * block_k
    return num_stages * (block_m * block_k * x_bytes + w_bytes) + block_m * block_n * out_bytes


def fits_group(fmt: str, group: int, block_k: int) -> bool:
    return fmt == "int8" or group % block_k == 0


def candidate_tiles(fmt: str, group: int, block_m: int, shared_limit: int) -> list[dict[str, int]]:
    """The configurations the autotuner times for these sizes, as `triton.Config` keywords
    (`BLOCK_N`, `BLOCK_K`, `num_warps`, `num_stages`): the regime's table, less those that
    break the group rule or do not fit in `shared_limit` bytes; else the fallback."""
    kept = [t.as_kwargs() for t in tiles_for(block_m)
            if fits_group(fmt, group, t.block_k)
            and estimated_shared_bytes(fmt, block_m, t.block_n, t.block_k, t.num_stages) <= shared_limit]
    return kept or [fallback_tile(fmt, group)]


def min_block_k(fmt: str) -> int:
    """fp8 tensor-core dots need K blocks of 32 at least; the others 16."""
    return 32 if fmt == "fp8" else MIN_DOT


def fallback_tile(fmt: str, group: int) -> dict[str, int]:
    """A small tile that fits anywhere, its K block the largest power of two dividing the group
    (at most 64)."""
    block_k = 64 if fmt == "int8" else max(min_block_k(fmt), largest_pow2_divisor(group, 64))
    return FALLBACK.as_kwargs(block_k)


def default_tile(fmt: str, group: int, block_m: int, shared_limit: int) -> dict[str, int]:
    """The untuned choice (DG_LSP_AUTOTUNE=0, the interpreter): the regime's first fitting tile."""
    return candidate_tiles(fmt, group, block_m, shared_limit)[0]


# -- for triton.autotune ---------------------------------------------------------------------

HOPPER_SHARED_BYTES = 232_448  # 227 KiB per block, opt-in (sm_90)
AMPERE_SHARED_BYTES = 166_912  # 163 KiB (sm_80)


def device_shared_limit(device) -> int:
    """Bytes of shared memory one program may use on `device` (opt-in maximum)."""
    import torch

    if device.type != "cuda":
        return HOPPER_SHARED_BYTES
    props = torch.cuda.get_device_properties(device)
    return int(getattr(props, "shared_memory_per_block_optin", 0) or AMPERE_SHARED_BYTES)


def _all_tile_kwargs() -> list[dict[str, int]]:
    """Every configuration any size may pick, the fallback's BLOCK_K variants included."""
    seen: dict[tuple, dict[str, int]] = {}
    for tile in (*CANVAS_TILES, *PROMPT_TILES):
        seen.setdefault(tuple(tile.as_kwargs().items()), tile.as_kwargs())
    for block_k in (16, 32, 64):
        kwargs = FALLBACK.as_kwargs(block_k)
        seen.setdefault(tuple(kwargs.items()), kwargs)
    return list(seen.values())


def autotune_configs():
    import triton

    return [triton.Config({"BLOCK_N": c["BLOCK_N"], "BLOCK_K": c["BLOCK_K"]}, num_warps=c["num_warps"],
                          num_stages=c["num_stages"]) for c in _all_tile_kwargs()]


def _config_kwargs(config) -> dict[str, int]:
    return {**config.kwargs, "num_warps": config.num_warps, "num_stages": config.num_stages}


def prune_configs(configs, named_args, **kwargs):
    """`early_config_prune` for triton.autotune: keep `candidate_tiles` (constexprs passed by
    keyword arrive in kwargs)."""
    args = {**named_args, **kwargs}
    fmt = {v: k for k, v in FORMAT_IDS.items()}[args["FORMAT"]]
    wanted = candidate_tiles(fmt, int(args["GROUP"]), args["BLOCK_M"], device_shared_limit(args["x_ptr"].device))
    kept = [c for c in configs if _config_kwargs(c) in wanted]
    assert kept, f"no autotune configuration among {wanted}"  # every candidate is in autotune_configs()
    return kept
