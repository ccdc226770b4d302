"""Compile every kernel launch for NVIDIA GPUs on a machine without one, and inspect the code.

The interpreter (TRITON_INTERPRET=1, the CPU tests) accepts code that compiled Triton rejects
(a plain Python global read inside a kernel, say), and says nothing about speed. Triton's code
generator and the `ptxas` / `cuobjdump` its wheel bundles need no GPU, so this script compiles
each launch `_gpu_launches.launches_for` finds down to a cubin for sm_90 (Hopper) and sm_80
(Ampere) and reads back what decides whether the first GPU run works and is fast:

- compile errors (one launch failing does not hide the others);
- shared memory (dynamic + static) against the target's per-block limit;
- register spills: local-memory loads and stores (LDL / STL) in the SASS;
- the instructions: tensor-core MMAs (HMMA, HGMMA, QGMMA) in the matmuls, no byte-wise
  global loads (LDG.E.U8 / .S8) in the quantized matmul, fp8 partial sums promoted to float32
  (`maxNumImpreciseAcc`), and the quantized matmul's shared memory within the estimate its
  autotune pruning uses.

Run in a fresh interpreter without TRITON_INTERPRET (tests/kernels/test_compile.py runs it
once per test session and checks the JSON report it writes):

    python tests/kernels/_compile_for_gpu.py                # both targets; exit 1 on any problem
    python tests/kernels/_compile_for_gpu.py --arch 90 --full --json report.json

Compiled kernels land in Triton's cache (~/.triton/cache), so a second run takes seconds.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

assert not os.environ.get("TRITON_INTERPRET"), "compile with TRITON_INTERPRET unset"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import triton  # noqa: E402
from _gpu_launches import TARGETS, Launch, launches_for  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

TOOLS = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
INSPECTION = 1  # bump when what _read_cubin extracts changes: its cached results are then stale
MMA = re.compile(r"^(HMMA|HGMMA|QGMMA|IMMA|IGMMA)\b")
BYTE_LOAD = re.compile(r"^LDG(\.[A-Z0-9_]+)*\.(U8|S8)$")
SPILL = re.compile(r"^(LDL|STL)\b")
# "/*0120*/   @!P0 LDG.E.U8 R4, desc[UR4][R2.64] ;" -> the opcode with its modifiers
SASS_LINE = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_.]*)")
# The same facts in the PTX, which ptxas turns into SASS instruction for instruction (loads keep
# their width, MMAs stay MMAs): read for every launch, where disassembling costs a second each.
PTX_MMA = re.compile(r"^\s*(?:@%p\d+\s+)?((?:wgmma\.mma_async|mma\.sync)[.\w]*)", re.M)
PTX_BYTE_LOAD = re.compile(r"^\s*(?:@%p\d+\s+)?(ld\.global(?:\.\w+)*\.[bsu]8)\s", re.M)
PTXAS_WARNING = re.compile(r"\((C\d+)\) ([^\n]*?)(?: in the function '\w+')?(?: in line \d+)?\s*$", re.M)


# -- compiling and reading back ---------------------------------------------------------------


def disassemble(launch: Launch) -> bool:
    """Whether to read this launch's SASS (and ptxas' remarks) too: the untuned default tiles
    of the quantized matmul and the other kernels' matmuls, the code a first GPU run executes."""
    matmul = launch.family in ("moe", "attention") or launch.kernel == "_soft_embed_kernel"
    if launch.family == "quant_matmul":
        return bool(launch.context.get("default_tiles"))
    return matmul and not launch.constexprs.get("DOT_FP32")


def compile_and_inspect(launch: Launch, arch: int) -> dict[str, Any]:
    """One launch, compiled for sm_<arch>: the facts the checks need (or the error)."""
    entry: dict[str, Any] = {"arch": arch, "label": launch.label, "family": launch.family, "purpose": launch.purpose,
                             "kernel": launch.kernel, "meta": launch.meta(), "options": launch.options,
                             "context": launch.context, "sources": launch.sources[:4]}
    started = time.perf_counter()
    try:
        fn = getattr(__import__(launch.module, fromlist=[launch.kernel]), launch.kernel)
        source = ASTSource(fn=fn, signature=launch.signature, constexprs=launch.constexprs, attrs=launch.attrs)
        compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=dict(launch.options))
    except Exception as error:  # report every launch, not only the first failure
        entry.update(ok=False, error=f"{type(error).__name__}: {error}"[:2000], traceback=traceback.format_exc(limit=3))
        return entry
    entry["seconds"] = round(time.perf_counter() - started, 2)
    ptx = compiled.asm["ptx"]
    entry.update(
        ok=True, shared=compiled.metadata.shared,
        mma_instructions=sorted(set(PTX_MMA.findall(ptx))),
        byte_loads=dict(Counter(PTX_BYTE_LOAD.findall(ptx))),
        max_num_imprecise_acc=sorted({int(v) for v in re.findall(r"maxNumImpreciseAcc = (\d+)", compiled.asm["ttgir"])}),
        sass=False,
    )
    entry.update(_read_cubin(compiled.asm["cubin"], ptx, arch, disassemble(launch)))
    entry["shared"] += entry.pop("static_shared")
    return entry


def _read_cubin(cubin_bytes: bytes, ptx: str, arch: int, sass: bool) -> dict[str, Any]:
    """Resources from `cuobjdump -res-usage`, and with `sass` the disassembly's facts and ptxas'
    remarks (a second per kernel): kept on disk next to Triton's cache, keyed by the cubin."""
    key = hashlib.sha256(cubin_bytes + ptx.encode() + f"{sass}{INSPECTION}".encode()).hexdigest()
    cache = Path(os.environ.get("TRITON_CACHE_DIR", Path.home() / ".triton" / "cache")) / "dg_lsp_inspected"
    cached = cache / f"{key}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    facts: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cubin = Path(tmp) / "kernel.cubin"
        cubin.write_bytes(cubin_bytes)
        usage_text = _tool("cuobjdump", "-res-usage", cubin)
        usage = {k.lower(): int(v) for k, v in re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", usage_text)}
        # Spilled registers live in the stack frame (these kernels call nothing and have no local arrays).
        facts.update(registers=usage.get("reg"), stack=usage.get("stack", 0), local=usage.get("local", 0),
                     static_shared=usage.get("shared", 0))
        if sass:
            opcodes = Counter(SASS_LINE.findall(_tool("cuobjdump", "-sass", cubin)))
            ptx_file = Path(tmp) / "kernel.ptx"
            ptx_file.write_text(ptx)
            facts.update(
                sass=True, spill_instructions=sum(n for op, n in opcodes.items() if SPILL.match(op)),
                mma_instructions=sorted(op for op in opcodes if MMA.match(op)),
                byte_loads={op: n for op, n in opcodes.items() if BYTE_LOAD.match(op)},
                global_loads={op: n for op, n in opcodes.items() if op.startswith(("LDG", "LDGSTS", "UTMALDG"))},
                ptxas_remarks=_ptxas_remarks(ptx_file, arch),
            )
    cache.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(facts))
    partial.replace(cached)  # atomic: the other compiler process may write the same entry
    return facts


def _ptxas_remarks(ptx: Path, arch: int) -> list[str]:
    """ptxas' performance remarks (e.g. C7515, warp-group MMAs serialized), which Triton drops."""
    from triton.backends.nvidia.compiler import get_ptxas

    gpu = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
    log = subprocess.run([get_ptxas(arch).path, "-v", f"--gpu-name={gpu}", str(ptx), "-o", str(ptx.with_suffix(".o"))],
                         capture_output=True, text=True).stderr
    return sorted({f"{code} {text}" for code, text in PTXAS_WARNING.findall(log)})


def _tool(name: str, *args) -> str:
    return subprocess.run([str(TOOLS / name), *map(str, args)], capture_output=True, text=True, check=True).stdout


# -- the checks ----------------------------------------------------------------------------------


def quant_shared_estimate(entry: dict[str, Any]) -> int | None:
    if entry["family"] != "quant_matmul":
        return None
    from dg_lsp.kernels.quant_tiles import estimated_shared_bytes

    meta = entry["meta"]
    return estimated_shared_bytes(entry["context"]["format"], meta["BLOCK_M"], meta["BLOCK_N"], meta["BLOCK_K"],
                                  entry["options"]["num_stages"])


def problems(entry: dict[str, Any]) -> dict[str, str]:
    """Check name -> what is wrong with this compiled launch (empty when all is well)."""
    if not entry["ok"]:
        return {"compiles": entry["error"]}
    found = {}
    limit = TARGETS[entry["arch"]]["shared_bytes"]
    if entry["shared"] > limit:
        found["shared_memory"] = f"{entry['shared']:,} bytes of shared memory, the limit is {limit:,}"
    if entry["purpose"] == "dispatch" and (entry["stack"] or entry["local"] or entry.get("spill_instructions")):
        found["spills"] = (f"{entry['stack']} bytes of stack, {entry['local']} of local memory"
                           + (f", {entry['spill_instructions']} local loads/stores" if entry["sass"] else ""))
    tensor_core = entry["family"] in ("quant_matmul", "moe", "attention") or entry["kernel"] == "_soft_embed_kernel"
    if tensor_core and not entry["meta"].get("DOT_FP32") and not entry["mma_instructions"]:
        found["tensor_cores"] = f"no tensor-core MMA instruction (in the {'SASS' if entry['sass'] else 'PTX'})"
    if entry["family"] == "quant_matmul":
        if entry["byte_loads"] and entry["context"]["weight_rows_aligned"]:
            found["wide_loads"] = f"byte-wise global loads {entry['byte_loads']}"
        estimate = quant_shared_estimate(entry)
        if entry["shared"] > estimate:
            found["shared_estimate"] = f"{entry['shared']:,} bytes > the pruning estimate {estimate:,}"
        fp8_tensor_core = entry["context"]["format"] == "fp8" and not entry["meta"]["DOT_FP32"]
        if fp8_tensor_core and entry["max_num_imprecise_acc"] != [entry["meta"]["BLOCK_K"]]:
            found["fp8_promotion"] = f"maxNumImpreciseAcc {entry['max_num_imprecise_acc']} (want BLOCK_K)"
    return found


# -- the run --------------------------------------------------------------------------------------


def run(archs: list[int], full: bool, jobs: int, only: str | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    work = [(launch, arch) for arch in archs for launch in launches_for(arch, full=full)
            if not only or only in launch.label]
    recorded = time.perf_counter() - started
    # fork: the workers inherit the imported kernels; no CUDA here to make forking unsafe
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        entries = list(pool.map(compile_and_inspect, *zip(*work)))
    for entry in entries:
        entry["problems"] = problems(entry)
        entry["shared_estimate"] = quant_shared_estimate(entry)
    return {
        "triton": triton.__version__, "archs": archs, "full": full, "jobs": jobs, "only": only,
        "targets": {str(a): TARGETS[a] for a in archs},
        "record_seconds": round(recorded, 1), "seconds": round(time.perf_counter() - started, 1),
        "entries": entries,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, action="append", choices=sorted(TARGETS), help="default: all")
    parser.add_argument("--full", action="store_true", help="every size specialization of every tile configuration")
    jobs = int(os.environ.get("DG_LSP_COMPILE_JOBS", min(2, os.cpu_count() or 1)))
    parser.add_argument("--jobs", type=int, default=jobs, help="compiler processes (default 2, or DG_LSP_COMPILE_JOBS)")
    parser.add_argument("--only", help="only launches whose label contains this text, e.g. _canvas_attention")
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    report = run(args.arch or sorted(TARGETS, reverse=True), args.full, args.jobs, args.only)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
    bad = 0
    for entry in report["entries"]:
        found = entry["problems"]
        bad += bool(found)
        status = "FAILED" if found else "ok"
        facts = f"regs={entry.get('registers')} shared={entry.get('shared')}" if entry["ok"] else ""
        facts += "".join(f" [ptxas {remark}]" for remark in entry.get("ptxas_remarks", []))
        print(f"{status} sm_{entry['arch']} {entry['label']} {facts} {'; '.join(f'{k}: {v}' for k, v in found.items())}")
    print(f"{len(report['entries'])} launches compiled in {report['seconds']} s (triton {report['triton']}), {bad} with problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

