"""A kernel that fails on first use is replaced by its torch twin for the rest of the process.

No GPU is needed: each dispatcher is told the kernel may run (`use_triton` patched to True)
and its Triton host wrapper is replaced by one that raises, as a kernel that does not compile
for this GPU would. The dispatcher must answer with the reference, warn once, and not try the
kernel again.
"""

import logging
from dataclasses import dataclass
from typing import Callable

import pytest
import torch

from dg_lsp.kernels import _runtime, attention, moe, quant_matmul, sampling
from dg_lsp.kernels.quant_format import quantize_weight

from ._marks import needs_triton


@dataclass
class Dispatcher:
    module: object
    name: str  # the dispatcher, `<name>_triton` and `<name>_reference` in `module`
    gate: str  # the module-level function that decides whether the kernel may run
    inputs: Callable[[], tuple]
    kernel: str  # the name it is retired under


def _sample_inputs():
    return torch.randn(3, 50, generator=torch.Generator().manual_seed(0)), 0.8, torch.tensor([5]), None


def _soft_inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 4, 30, generator=g), torch.randn(30, 8, generator=g), torch.tensor(2.0)


def _attention_inputs():
    g = torch.Generator().manual_seed(2)
    return torch.randn(1, 4, 3, 8, generator=g), *(torch.randn(1, 2, n, 8, generator=g) for n in (5, 5, 3, 3))


def _moe_inputs():
    g = torch.Generator().manual_seed(3)
    index = torch.tensor([[0, 2], [1, 0], [2, 1]])
    return torch.randn(3, 8, generator=g), torch.rand(3, 2, generator=g), index, torch.randn(3, 12, 8, generator=g), \
        torch.randn(3, 8, 6, generator=g)


def _quant_inputs():
    q, s = quantize_weight(torch.randn(6, 32, generator=torch.Generator().manual_seed(4)), "int8")
    return torch.randn(3, 32, generator=torch.Generator().manual_seed(5)), q, s, "int8"


def _grouped_quant_inputs():
    q, s = quantize_weight(torch.randn(2, 6, 32, generator=torch.Generator().manual_seed(6)), "int4", group_size=16)
    return torch.randn(3, 32, generator=torch.Generator().manual_seed(7)), q, s, "int4", torch.tensor([0, 1, 1, 0, 1, 0]), 2


DISPATCHERS = [
    Dispatcher(sampling, "fused_sample", "use_triton", _sample_inputs, "fused_sample"),
    Dispatcher(sampling, "soft_embeddings", "use_triton", _soft_inputs, "soft_embeddings"),
    Dispatcher(attention, "canvas_attention", "use_triton", _attention_inputs, "canvas_attention"),
    Dispatcher(moe, "moe_experts", "use_triton", _moe_inputs, "moe_experts"),
    Dispatcher(quant_matmul, "quant_matmul", "kernels_usable", _quant_inputs, "quant_matmul[int8]"),
    Dispatcher(quant_matmul, "grouped_quant_matmul", "kernels_usable", _grouped_quant_inputs, "grouped_quant_matmul[int4]"),
]


@pytest.fixture(autouse=True)
def no_retired_kernels():
    _runtime.reset_broken_kernels()
    yield
    _runtime.reset_broken_kernels()


def _failing_kernel(error: Exception):
    calls = []

    def kernel(*args, **kwargs):
        calls.append(args)
        raise error

    return kernel, calls


def _equal(got, want) -> bool:
    if isinstance(want, tuple):
        return len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want))
    return torch.equal(got, want)


@pytest.mark.parametrize("d", DISPATCHERS, ids=[d.name for d in DISPATCHERS])
def test_a_failing_kernel_is_replaced_by_its_reference_and_logged_once(d, monkeypatch, caplog):
    monkeypatch.setattr(d.module, d.gate, lambda *args: True)
    kernel, calls = _failing_kernel(RuntimeError("PTX .version 8.7 does not support .target sm_120"))
    monkeypatch.setattr(d.module, f"{d.name}_triton", kernel)
    dispatch, reference = getattr(d.module, d.name), getattr(d.module, f"{d.name}_reference")
    inputs = d.inputs()
    want = reference(*inputs)
    with caplog.at_level(logging.WARNING, logger=_runtime.__name__):
        for _ in range(3):
            assert _equal(dispatch(*inputs), want)
    assert len(calls) == 1  # tried once, then retired
    assert _runtime.broken_kernels() == {d.kernel}
    warnings = [r for r in caplog.records if r.name == _runtime.__name__]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert d.kernel in warnings[0].getMessage() and "sm_120" in warnings[0].getMessage()


def test_retiring_one_kernel_leaves_the_others(monkeypatch):
    monkeypatch.setattr(attention, "use_triton", lambda *args: True)
    monkeypatch.setattr(moe, "use_triton", lambda *args: True)
    broken, broken_calls = _failing_kernel(RuntimeError("out of resources: shared memory"))
    monkeypatch.setattr(attention, "canvas_attention_triton", broken)
    moe_calls = []
    monkeypatch.setattr(moe, "moe_experts_triton", lambda *a: moe_calls.append(a) or moe.moe_experts_reference(*a))
    for _ in range(2):
        attention.canvas_attention(*_attention_inputs())
        moe.moe_experts(*_moe_inputs())
    assert len(broken_calls) == 1 and len(moe_calls) == 2
    assert _runtime.broken_kernels() == {"canvas_attention"}


def test_bad_input_is_the_callers_error_and_retires_nothing(monkeypatch):
    monkeypatch.setattr(sampling, "use_triton", lambda *args: True)
    kernel, calls = _failing_kernel(_runtime.KernelInputError("logits must be [N, V], got (3,)"))
    monkeypatch.setattr(sampling, "fused_sample_triton", kernel)
    for _ in range(2):
        with pytest.raises(ValueError, match="must be"):
            sampling.fused_sample(*_sample_inputs())
    assert len(calls) == 2 and not _runtime.broken_kernels()


@needs_triton
def test_the_real_wrappers_refuse_bad_shapes_as_input_errors():
    q = torch.randn(1, 4, 3, 8)
    with pytest.raises(_runtime.KernelInputError):
        attention.canvas_attention_triton(q, q, q, torch.randn(1, 3, 3, 8), torch.randn(1, 3, 3, 8))
    with pytest.raises(_runtime.KernelInputError):
        sampling.fused_sample_triton(torch.randn(2, 3, 4), 1.0, torch.tensor([0]))
    payload, scale = quantize_weight(torch.randn(6, 32), "int8")
    with pytest.raises(_runtime.KernelInputError):
        quant_matmul.quant_matmul_triton(torch.randn(3, 16), payload, scale, "int8")
