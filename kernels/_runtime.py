"""When the Triton kernels may run, decided in one place.

The model calls a kernel only for CUDA tensors with Triton importable; everything else
(CPU inference, CI) stays on the torch reference twins. The tests also run the kernels on
CPU tensors through the Triton interpreter (`TRITON_INTERPRET=1`), which computes `tl.dot`
on bf16 operands wrongly: kernels ask `interpreting()` and then dot in float32.

A kernel that fails on a GPU (it does not compile for this architecture, runs out of shared
memory, meets a Triton bug) must not take the server down with it: the dispatchers call it
through `call_with_fallback`, which retires it for the rest of the process and answers with
its torch twin instead.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from typing import TypeVar

import torch

log = logging.getLogger(__name__)
T = TypeVar("T")


class KernelInputError(ValueError):
    """The caller's tensors do not fit the kernel (shapes, sizes): their fault, not the kernel's,
    so it propagates instead of retiring the kernel."""


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


def device_capability(device: torch.device) -> tuple[int, int]:
    """(major, minor) compute capability of a CUDA device; (0, 0) elsewhere. The one place the
    host wrappers ask, so the CI compile check can say which GPU they are choosing for."""
    if device.type != "cuda":
        return (0, 0)
    return torch.cuda.get_device_capability(device)


# -- retiring a kernel that fails ---------------------------------------------------------

_broken: set[str] = set()
_broken_lock = threading.Lock()


def broken_kernels() -> frozenset[str]:
    """The kernels retired so far in this process."""
    return frozenset(_broken)


def call_with_fallback(name: str, triton_fn: Callable[..., T], reference_fn: Callable[..., T], *args, **kwargs) -> T:
    """`triton_fn(*args, **kwargs)`; if it raises, log once, mark `name` broken and return
    `reference_fn(*args, **kwargs)`, as every later call does without trying the kernel again.

    Propagated instead: `KernelInputError` (bad input; the reference would refuse it too), an
    out-of-memory error (transient, not the kernel's fault) and anything raised while a CUDA
    graph is being captured (the capture's owner falls back to eager for that)."""
    if name in _broken:
        return reference_fn(*args, **kwargs)
    try:
        return triton_fn(*args, **kwargs)
    except (KernelInputError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as error:
        if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            raise
        _retire(name, error)
    return reference_fn(*args, **kwargs)


def _retire(name: str, error: Exception) -> None:
    with _broken_lock:
        if name in _broken:
            return
        _broken.add(name)
    log.warning("Triton kernel %s failed (%s: %s); using its torch reference for the rest of this process",
                name, type(error).__name__, error)


def reset_broken_kernels() -> None:
    """Forget every retired kernel (for tests)."""
    with _broken_lock:
        _broken.clear()
