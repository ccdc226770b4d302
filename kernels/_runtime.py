"""When the Triton kernels may run, decided in one place.

The model calls a kernel only for CUDA tensors with Triton importable; everything else
(CPU inference, CI) stays on the torch reference twins. The tests also run the kernels on
CPU tensors through the Triton interpreter (`TRITON_INTERPRET=1`), which computes `tl.dot`
on bf16 operands wrongly: kernels ask `interpreting()` and then dot in float32.
"""

from __future__ import annotations

import functools
import os

import torch


@functools.cache
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreting() -> bool:
    """True when @triton.jit functions run in the Python interpreter (read at decoration time)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def use_triton(*tensors: torch.Tensor) -> bool:
    """The compiled kernels serve CUDA tensors only; the CPU path is the reference, always.
    They have no backward, so a pass that records gradients (training) keeps the reference."""
    if not all(t.is_cuda for t in tensors) or not triton_available() or interpreting():
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
