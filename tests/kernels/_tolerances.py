"""How far a kernel's result may be from its reference: derived from the dtype and the sum length.

A fixed `atol=1e-5` is a guess that holds on one CPU and fails on another: float32 sums come
out in a different order on different SIMD widths and BLAS builds, and the error of a sum of
n terms grows with n. The kernel tests therefore compare against a float64 reference where
the reference twin computes in float64 (given float64 inputs), and allow

    rel = 2 * eps(dtype) + SAFETY * eps(float32) * sqrt(n),     atol = rel * magnitude

- 2 * eps(dtype): rounding the result (and the operands a GPU kernel rounds, such as bf16
  probabilities) to `dtype`, each at most half a unit in the last place;
- eps(float32) * sqrt(n): the kernels accumulate in float32, and the rounding errors of an
  n-term sum add up like a random walk; SAFETY = 8 keeps the measured errors (0.1x to 1.2x
  eps * sqrt(n) * magnitude on x86 CPUs) well inside;
- magnitude: the size of the partial sums, which is what the rounding errors are relative to
  (often not the size of the result: attention's scores are sums of d products of size sqrt(d)).

Real bugs (a dropped key block, a wrong mask, a swapped expert) move results by a sizable
fraction of `magnitude`, orders of magnitude beyond this.
"""

from __future__ import annotations

import math

import torch

SAFETY = 8.0


def tolerance(dtype: torch.dtype, reduction_len: int, magnitude: float = 1.0) -> dict[str, float]:
    """`torch.testing.assert_close` keyword arguments (rtol, atol) for a kernel result in `dtype`
    whose longest float32 sum has `reduction_len` terms with partial sums of size `magnitude`."""
    rel = 2 * torch.finfo(dtype).eps + SAFETY * torch.finfo(torch.float32).eps * math.sqrt(max(1, reduction_len))
    return {"rtol": rel, "atol": rel * magnitude}


def float64(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The floating-point tensors as float64 (exact copies), the others unchanged: the inputs
    of a reference twin computed in float64."""
    return tuple(t.double() if t.is_floating_point() else t for t in tensors)
