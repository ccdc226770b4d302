"""Every kernel launch compiles for Hopper (sm_90) and Ampere (sm_80), fits, does not spill, and
uses the instructions that make it fast: checked on any machine, without a GPU.

`_compile_for_gpu.py` records each launch the host wrappers make for the 26B-A4B geometry
(autotune candidates included), compiles them all in one subprocess (TRITON_INTERPRET unset,
two compiler processes) and writes a JSON report; the tests below read that one report, so
the compilation happens once per session. Every test name contains `hopper` (`-k hopper`
selects them); the sm_80 cases add `ampere`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ._marks import needs_triton

SCRIPT = Path(__file__).with_name("_compile_for_gpu.py")
ARCHS = [pytest.param(90, id="sm_90"), pytest.param(80, id="sm_80-ampere")]
KERNELS = ("_sample_partials_kernel", "_sample_combine_kernel", "_row_logsumexp_kernel", "_soft_embed_kernel",
           "_canvas_attention_kernel", "_moe_gate_up_kernel", "_moe_down_kernel", "_quant_matmul_kernel")

pytestmark = needs_triton


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    from triton.backends import backends

    if "nvidia" not in backends:
        pytest.skip("this triton build has no NVIDIA backend")
    out = tmp_path_factory.mktemp("compile") / "report.json"
    # A fresh interpreter without TRITON_INTERPRET: this process decorated the kernels for the interpreter.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9 warns when it is unset; 1 is its default
    result = subprocess.run([sys.executable, str(SCRIPT), "--json", str(out)], capture_output=True, text=True,
                            env=env, timeout=1500)
    if not out.exists():
        pytest.fail(f"the compile check did not run:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(out.read_text())


def entries(report: dict, arch: int, family: str | None = None) -> list[dict]:
    found = [e for e in report["entries"] if e["arch"] == arch and (family is None or e["family"] == family)]
    assert found, (arch, family)
    return found


def failures(report: dict, arch: int, check: str) -> list[str]:
    return [f"{e['label']} (from {e['sources'][0]}): {e['problems'][check]}"
            for e in entries(report, arch) if check in e["problems"]]


@pytest.mark.parametrize("arch", ARCHS)
def test_hopper_every_kernel_compiles(report, arch):
    assert not failures(report, arch, "compiles"), "\n".join(failures(report, arch, "compiles"))
    compiled = {e["kernel"] for e in entries(report, arch)}
    assert compiled == set(KERNELS)


@pytest.mark.parametrize("arch", ARCHS)
def test_hopper_shared_memory_within_the_limit(report, arch):
    assert not failures(report, arch, "shared_memory"), "\n".join(failures(report, arch, "shared_memory"))


@pytest.mark.parametrize("arch", ARCHS)
def test_hopper_no_register_spills(report, arch):
    assert not failures(report, arch, "spills"), "\n".join(failures(report, arch, "spills"))


@pytest.mark.parametrize("arch", ARCHS)
def test_hopper_matmuls_run_on_tensor_cores(report, arch):
    assert not failures(report, arch, "tensor_cores"), "\n".join(failures(report, arch, "tensor_cores"))
    if arch == 90:  # the quantized matmul's tiles are wide enough for warp-group MMAs (SASS or PTX names)
        quant = [e for e in entries(report, 90, "quant_matmul") if not e["meta"]["DOT_FP32"]]
        assert all(any(op.startswith(("HGMMA", "QGMMA", "wgmma")) for op in e["mma_instructions"]) for e in quant)


@pytest.mark.parametrize("arch", ARCHS)
def test_hopper_quantized_weights_load_in_wide_vectors(report, arch):
    assert not failures(report, arch, "wide_loads"), "\n".join(failures(report, arch, "wide_loads"))
    int4 = [e for e in entries(report, arch, "quant_matmul") if e["context"]["format"] == "int4"
            and e["context"]["weight_rows_aligned"]]
    assert int4 and not any(e["byte_loads"] for e in int4)
    disassembled = [e for e in int4 if e["sass"]]  # the default tiles: LDG.E.U8 absent from the SASS itself
    assert disassembled and all(e["global_loads"] and not e["byte_loads"] for e in disassembled)


def test_hopper_fp8_partial_sums_are_promoted_to_float32(report):
    assert not failures(report, 90, "fp8_promotion"), "\n".join(failures(report, 90, "fp8_promotion"))
    assert any(e["context"]["format"] == "fp8" for e in entries(report, 90, "quant_matmul"))


@pytest.mark.parametrize("arch", ARCHS)
def test_hopper_autotune_pruning_estimate_bounds_shared_memory(report, arch):
    assert not failures(report, arch, "shared_estimate"), "\n".join(failures(report, arch, "shared_estimate"))


def test_hopper_check_covers_every_tile_the_dispatch_can_choose(report):
    """Each autotune candidate of each format, row regime and layout is compiled for sm_90."""
    from dg_lsp.kernels import quant_tiles

    compiled = {(e["context"]["format"], e["context"]["grouped"], e["meta"]["BLOCK_M"], e["meta"]["BLOCK_N"],
                 e["meta"]["BLOCK_K"], e["options"]["num_warps"], e["options"]["num_stages"])
                for e in entries(report, 90, "quant_matmul")}
    limit = report["targets"]["90"]["shared_bytes"]
    for fmt, group in (("int8", 2816), ("int4", 128), ("int4", 64), ("fp8", 2816), ("fp8", 704)):
        for grouped, block_ms in ((False, (16, 64, 128)), (True, (16, 64))):
            for block_m in block_ms:
                for tile in quant_tiles.candidate_tiles(fmt, group, block_m, limit):
                    want = (fmt, grouped, block_m, tile["BLOCK_N"], tile["BLOCK_K"], tile["num_warps"], tile["num_stages"])
                    assert want in compiled, want
