"""What this device can do, measured in the same run as the benchmark that divides by it.

Datasheet peaks (an H200's 4.8 TB/s, 989 dense bf16 TFLOP/s) are never reached: a
device-to-device copy and a large cuBLAS matmul are what a kernel can hope for, so the
rooflines and "% of ceiling" figures of benchmarks/kernels.py and gpu_end_to_end.py use these:

- bandwidth: a 1 GiB copy, bytes read plus written, per second;
- bf16 and fp8 matmul: 8192^3 on random data (fp8 through torch._scaled_mm, where the device
  and torch support it; None elsewhere).

On a CPU (the benchmarks' smoke runs) the same measurements run at small sizes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass
class Ceilings:
    gb_per_s: float
    bf16_tflop_per_s: float
    fp8_tflop_per_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def median_ms(fn: Callable[[], Any], device: torch.device, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of `fn` in milliseconds, synchronized (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def measure(device: torch.device) -> Ceilings:
    small = device.type != "cuda"
    return Ceilings(copy_gb_per_s(device, 2**22 if small else 2**28), matmul_tflop_per_s(device, 256 if small else 8192),
                    fp8_matmul_tflop_per_s(device, 8192) if not small else None)


def copy_gb_per_s(device: torch.device, elements: int) -> float:
    src = torch.randn(elements, device=device)
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), device)
    return 2 * src.numel() * src.element_size() / ms / 1e6


def matmul_tflop_per_s(device: torch.device, n: int) -> float:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    return 2 * n**3 / median_ms(lambda: a @ b, device) / 1e9


def fp8_matmul_tflop_per_s(device: torch.device, n: int) -> float | None:
    """e4m3 x e4m3 -> bf16 with per-tensor scales; None where fp8 matmuls are unsupported."""
    if device.type != "cuda" or torch.cuda.get_device_capability(device) < (8, 9) or not hasattr(torch, "_scaled_mm"):
        return None
    a = torch.randn(n, n, device=device).to(torch.float8_e4m3fn)
    b = torch.randn(n, n, device=device).to(torch.float8_e4m3fn).t()  # column-major, as cuBLASLt wants
    one = torch.ones((), device=device)
    try:
        ms = median_ms(lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16), device)
    except (RuntimeError, TypeError):
        return None
    return 2 * n**3 / ms / 1e9
