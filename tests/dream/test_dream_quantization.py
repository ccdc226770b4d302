"""`dg-lsp quantize` and `dgLsp.quantization` on Dream-family checkpoints (int8, int4, fp8).

As for DiffusionGemma (tests/quant/test_quantized_model.py): a quantized model must compute what a
float model holding its dequantized weights computes (catches layout, scale, bias and swap bugs),
and its logits must stay near the float ones. The q/k/v biases are kept unquantized.
"""

import json

import pytest
import torch
from safetensors.torch import load_file

from dg_lsp import cli
from dg_lsp.kernels.quant_format import dequantize_weight, quantize_activations_fp8
from dg_lsp.model.dream import DreamModel
from dg_lsp.model.loader import load_model
from dg_lsp.model.quant_modules import QUANTIZED_LINEAR, QuantLinear
from dg_lsp.model.quantize import quantize_checkpoint, quantize_loaded_model

from .tiny_dream import build_tiny_dream

pytest.importorskip("transformers")
GROUP = 32
FORMATS = ["int8", "int4", "fp8"]
# Relative logit error of the quantized tiny model (measured: int8 0.005, fp8 0.027, int4 0.10).
ERROR_BOUND = {"int8": 0.02, "fp8": 0.08, "int4": 0.3}


@pytest.fixture(scope="module", params=["dream", "open_dcoder"])
def source(request, tmp_path_factory):
    return build_tiny_dream(tmp_path_factory.mktemp(request.param), variant=request.param, seed=2)


@pytest.fixture(scope="module")
def quantized(source, tmp_path_factory):
    made = {}

    def get(fmt):
        if fmt not in made:
            made[fmt] = quantize_checkpoint(source, tmp_path_factory.mktemp(fmt), fmt, GROUP, progress=False)
        return made[fmt]

    return get


def _ids():
    return torch.randint(4, 512, (2, 40), generator=torch.Generator().manual_seed(0))


def _logits(model):
    with torch.inference_mode():
        return model(_ids())


def _relative_error(got, want):
    got, want = got - got.mean(-1, keepdim=True), want - want.mean(-1, keepdim=True)  # softmax ignores shifts
    return float((got - want).norm() / want.norm())


def _round_fp8(x):
    q, s = quantize_activations_fp8(x.reshape(-1, x.shape[-1]))
    return (q.float() * s[:, None]).reshape(x.shape).to(x.dtype)


@pytest.mark.parametrize("fmt", FORMATS)
def test_checkpoint_layout(quantized, source, fmt):
    report = quantized(fmt)
    tensors = load_file(report.directory / "model.safetensors")
    original = load_file(source / "model.safetensors")
    assert report.quantized and all(QUANTIZED_LINEAR.match(k.removeprefix("model.")) for k in report.quantized)
    assert len(report.quantized) == 7 * 2  # q, k, v, o, gate, up, down in both layers
    for key in report.quantized:
        assert key + "_scale" in tensors and tensors[key].dtype != torch.float32
    for key in ("model.layers.0.self_attn.q_proj.bias", "model.embed_tokens.weight", "model.norm.weight"):
        assert torch.equal(tensors[key], original[key])  # kept as they were
    config = json.loads((report.directory / "config.json").read_text())
    assert config["quantization_config"]["format"] == fmt
    assert "biases" in config["quantization_config"]["kept_unquantized"]
    assert (report.directory / "tokenizer.json").is_file()
    assert (report.directory / "dg_lsp.json").is_file() == (source / "dg_lsp.json").is_file()  # the override travels


@pytest.mark.parametrize("fmt", FORMATS)
def test_quantized_model_computes_its_dequantized_weights(quantized, fmt):
    directory = quantized(fmt).directory
    loaded = load_model(directory, progress=False)
    assert loaded.family == "dream" and loaded.quantization == fmt
    linears = {n: m for n, m in loaded.model.named_modules() if isinstance(m, QuantLinear)}
    assert len(linears) == 14 and all(linears[f"layers.{i}.self_attn.q_proj"].bias is not None for i in (0, 1))

    # A float twin: the float checkpoint's layout with every quantized weight dequantized.
    tensors = load_file(directory / "model.safetensors")
    twin = DreamModel(loaded.config)
    state = {}
    for name in twin.state_dict():
        key = "lm_head.weight" if name == "lm_head.weight" else f"model.{name}"
        if key + "_scale" in tensors:
            state[name] = dequantize_weight(tensors[key], tensors[key + "_scale"], fmt)
        else:
            state[name] = tensors[key].float()
    twin.load_state_dict(state)
    twin.eval()
    if fmt == "fp8":  # the fp8 matmul also rounds its input to e4m3 per token
        for name, module in twin.named_modules():
            if name in linears:
                module.register_forward_pre_hook(lambda module, args: (_round_fp8(args[0]),))
    torch.testing.assert_close(_logits(loaded.model), _logits(twin), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("fmt", FORMATS)
def test_quantized_logits_stay_close_to_the_float_ones(quantized, source, fmt):
    want = _logits(load_model(source, progress=False).model)
    got = _logits(load_model(quantized(fmt).directory, progress=False).model)
    assert _relative_error(got, want) < ERROR_BOUND[fmt]


@pytest.mark.parametrize("fmt", FORMATS)
def test_bf16_quantized_logits_stay_close_to_bf16_ones(quantized, source, fmt):
    want = _logits(load_model(source, dtype=torch.bfloat16, progress=False).model)
    got = _logits(load_model(quantized(fmt).directory, dtype=torch.bfloat16, progress=False).model)
    assert torch.isfinite(got).all()
    assert _relative_error(got, want) < ERROR_BOUND[fmt] + 0.02  # bf16 rounding on both sides


@pytest.mark.parametrize("fmt", FORMATS)
def test_quantizing_at_load_equals_loading_a_quantized_checkpoint(quantized, source, fmt):
    # The server's dgLsp.quantization setting: a float checkpoint quantized in memory.
    written = load_model(quantized(fmt).directory, progress=False).model
    loaded = load_model(source, progress=False).model
    assert quantize_loaded_model(loaded, fmt, GROUP) == 14
    assert torch.equal(_logits(loaded), _logits(written))


def test_cli_quantize(tmp_path, source, capsys):
    out = tmp_path / "int8"
    assert cli.main(["quantize", "--bits", "8", str(source), str(out)]) == 0
    assert "int8: 14 tensors quantized" in capsys.readouterr().out
    assert load_model(out, progress=False).quantization == "int8"


def test_quantize_refuses_a_plain_qwen2_without_the_override(tmp_path):
    from dg_lsp.errors import ModelLoadError

    src = build_tiny_dream(tmp_path / "odc", variant="open_dcoder", override=False)
    with pytest.raises(ModelLoadError, match="dg_lsp.json"):
        quantize_checkpoint(src, tmp_path / "out", "int8", progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("fmt", FORMATS)
def test_cuda_kernels_give_the_cpu_reference_logits(quantized, fmt):
    directory = quantized(fmt).directory
    cpu = _logits(load_model(directory, progress=False).model)
    gpu = load_model(directory, device="cuda", dtype=torch.float32, progress=False).model
    with torch.inference_mode():
        got = gpu(_ids().cuda()).cpu()
    torch.testing.assert_close(got, cpu, atol=2e-2, rtol=2e-2)  # fp32 activations; tf32 dots on the GPU
