"""Quantized stand-ins for the model's linear layers and routed experts, and the module swap.

The model itself knows nothing of quantization: a quantized checkpoint is loaded by building
the model, replacing each quantized `nn.Linear` with a `QuantLinear` (and `Experts` with
`QuantExperts`), then loading the stored payloads and scales into them. Their forward picks
the Triton kernel where it can run (CUDA, or the interpreter on a CPU when TRITON_INTERPRET=1)
and the reference twin (dequantize, then matmul in float32) everywhere else.

What is quantized (`QUANTIZED_LINEAR`): the attention projections, the dense MLP, the
self-conditioning MLP and the routed experts - nearly all of the weight bytes. Kept in the
model dtype: the token embedding (it is also the tied LM head, and the soft embeddings of
self-conditioning read it, where logit precision drives the entropy-based acceptance), an
untied `lm_head` for the same reason, the router (top-k choices flip on small errors and the
weight is tiny), norms, scales and layer scalars.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ..kernels.quant_format import FORMATS, payload_dtype, payload_shape
from ..kernels.quant_matmul import (
    grouped_quant_matmul,
    grouped_quant_matmul_reference,
    kernels_usable,
    quant_matmul,
    quant_matmul_reference,
)
from . import ops

# Our parameter names (checkpoint names without the model.decoder. prefix) that get quantized.
QUANTIZED_LINEAR = re.compile(
    r"^(layers\.\d+\.self_attn\.[qkvo]_proj|layers\.\d+\.mlp\.(gate|up|down)_proj|self_conditioning\.(gate|up|down)_proj)\.weight$"
)
QUANTIZED_EXPERTS = re.compile(r"^layers\.\d+\.experts\.(gate_up_proj|down_proj)$")
SCALE_SUFFIX = "_scale"


class QuantLinear(nn.Module):
    """y = x @ W.T (+ bias) with W quantized (`fmt` in int8 / int4 / fp8).

    Buffers: `weight` (payload, layout in dg_lsp.kernels.quant_format) and `weight_scale`
    (float32), named like the checkpoint's `X.weight` / `X.weight_scale`. A bias (Qwen2's q/k/v
    projections) stays an unquantized parameter `X.bias` in the model dtype."""

    bias: nn.Parameter | None

    def __init__(self, in_features: int, out_features: int, fmt: str, groups: int = 1, bias: bool = False):
        super().__init__()
        if fmt not in FORMATS:
            raise ValueError(f"unknown quantization format {fmt!r}")
        self.in_features, self.out_features, self.fmt = in_features, out_features, fmt
        self.group_size = in_features // groups if fmt == "int4" else in_features
        self.register_buffer("weight", torch.empty(payload_shape(out_features, in_features, fmt), dtype=payload_dtype(fmt)))
        scale_shape = (out_features, groups) if fmt == "int4" else (out_features,)
        self.register_buffer("weight_scale", torch.empty(scale_shape, dtype=torch.float32))
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)  # [M, K]
        if kernels_usable(flat, self.fmt, self.group_size):
            out = quant_matmul(flat.contiguous(), self.weight, self.weight_scale, self.fmt)
        else:
            out = quant_matmul_reference(flat, self.weight, self.weight_scale, self.fmt)
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fmt={self.fmt}"


class QuantExperts(nn.Module):
    """Routed experts with quantized weights: gate_up_proj [E, 2I, H], down_proj [E, H, I]
    (payload layouts per expert, like QuantLinear), plus `gate_up_proj_scale`, `down_proj_scale`."""

    def __init__(self, num_experts: int, hidden: int, intermediate: int, fmt: str, groups: tuple[int, int] = (1, 1)):
        super().__init__()
        self.fmt, self.hidden, self.intermediate = fmt, hidden, intermediate
        self.group_sizes = (hidden // groups[0], intermediate // groups[1]) if fmt == "int4" else (hidden, intermediate)
        for name, (n, k), g in (("gate_up_proj", (2 * intermediate, hidden), groups[0]), ("down_proj", (hidden, intermediate), groups[1])):
            self.register_buffer(name, torch.empty(num_experts, *payload_shape(n, k, fmt), dtype=payload_dtype(fmt)))
            scale_shape = (num_experts, n, g) if fmt == "int4" else (num_experts, n)
            self.register_buffer(name + SCALE_SUFFIX, torch.empty(scale_shape, dtype=torch.float32))

    def _linear(self, x: torch.Tensor, name: str, e: int) -> torch.Tensor:
        q, s = getattr(self, name)[e], getattr(self, name + SCALE_SUFFIX)[e]
        group = self.group_sizes[0 if name == "gate_up_proj" else 1]
        if kernels_usable(x, self.fmt, group):
            return quant_matmul(x.contiguous(), q, s, self.fmt)
        return quant_matmul_reference(x, q, s, self.fmt)

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """One expert densely (the single-expert model's path). x: [N, H] -> [N, H]."""
        gate, up = self._linear(x, "gate_up_proj", e).chunk(2, dim=-1)
        return self._linear(ops.gelu_tanh(gate) * up, "down_proj", e)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """x: [N, H]; weights, index: [N, K] -> [N, H]. Every (token, slot) pair is a row of a
        grouped matmul; no host sync on the kernel path, so the step can be graph-captured."""
        n, top_k = index.shape
        pair_expert = index.reshape(-1)  # [P = N * K]; pair p is token p // K
        usable = kernels_usable(x, self.fmt, min(self.group_sizes))
        matmul = grouped_quant_matmul if usable else grouped_quant_matmul_reference
        x_in = x.contiguous() if usable else x
        gate, up = matmul(x_in, self.gate_up_proj, self.gate_up_proj_scale, self.fmt, pair_expert, top_k).chunk(2, dim=-1)
        hidden = (ops.gelu_tanh(gate) * up).contiguous()  # [P, I]
        out = matmul(hidden, self.down_proj, self.down_proj_scale, self.fmt, pair_expert, 1)  # [P, H]
        out = out.float() * weights.reshape(-1, 1)
        return out.view(n, top_k, -1).sum(dim=1).to(x.dtype)


def quantized_module_names(checkpoint_names: list[str]) -> dict[str, str]:
    """Our module name -> "linear" or "experts", for every module whose scale the checkpoint holds."""
    found = {}
    for name in checkpoint_names:
        if not name.endswith(SCALE_SUFFIX):
            continue
        base = name[: -len(SCALE_SUFFIX)]
        if QUANTIZED_LINEAR.match(base):
            found[base.rsplit(".", 1)[0]] = "linear"
        elif QUANTIZED_EXPERTS.match(base):
            found[base.rsplit(".", 1)[0]] = "experts"
    return found


def swap_quantized_modules(model: nn.Module, modules: dict[str, str], fmt: str, scale_shapes: dict[str, tuple]) -> set[str]:
    """Replace the named modules of `model` (built on the meta device) by quantized ones shaped
    for the checkpoint (`scale_shapes`: our scale tensor name -> shape, which gives int4 group
    counts). Returns the state-dict names of the quantized buffers (stored dtypes, kept as is)."""
    quantized = set()
    for name, kind in modules.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        old = getattr(parent, child)
        if kind == "linear":
            if not isinstance(old, nn.Linear):
                raise ValueError(f"{name} is not a linear layer and cannot be quantized")
            groups = scale_shapes[f"{name}.weight{SCALE_SUFFIX}"][-1] if fmt == "int4" else 1
            new = QuantLinear(old.in_features, old.out_features, fmt, groups, bias=old.bias is not None)
            if old.bias is not None:
                new.bias = old.bias  # unquantized: a loaded bias is kept, a meta one is filled by the loader
            quantized |= {f"{name}.weight", f"{name}.weight{SCALE_SUFFIX}"}
        else:
            e, two_i, h = old.gate_up_proj.shape
            groups = ((scale_shapes[f"{name}.gate_up_proj{SCALE_SUFFIX}"][-1], scale_shapes[f"{name}.down_proj{SCALE_SUFFIX}"][-1])
                      if fmt == "int4" else (1, 1))
            new = QuantExperts(e, h, two_i // 2, fmt, groups)
            quantized |= {f"{name}.{p}{s}" for p in ("gate_up_proj", "down_proj") for s in ("", SCALE_SUFFIX)}
        setattr(parent, child, new)
    return quantized
