"""quantize -> load -> logits on tiny checkpoints, the checkpoint writer, and the CLI.

Tolerances. (1) A quantized model must compute what a float model holding its dequantized
weights computes ("fake quantization"; for fp8 the activations are rounded to e4m3 per token
too): the same float32 math, only the summation order differs, so 1e-4. That catches every
layout, scale or swap bug. (2) The quantization error itself: rounding to nearest moves each
weight by at most half a step, like uniform noise of that width; so the logits of the
quantized model may be no further from the original model's than twice as far as those of a
copy perturbed by such noise (measured: ratio 0.5 to 1.1). The tiny random models are very
sensitive (their logits are nearly flat and 4 layers amplify errors): int4 moves their logits
by ~80 % of their spread, as the noise copy does, so (2) is a check of the error's size, not
of the quality of a real model.
"""

import json

import pytest
import torch
import torch.nn.functional as F

from dg_lsp import cli
from dg_lsp.errors import InputError, ModelLoadError
from dg_lsp.kernels.quant_format import dequantize_weight, quantize_activations_fp8, quantize_weight
from dg_lsp.model.diffusion_gemma import Experts
from dg_lsp.model.loader import load_model
from dg_lsp.model.quant_modules import QUANTIZED_EXPERTS, QUANTIZED_LINEAR, QuantExperts, QuantLinear
from dg_lsp.model.quantize import quantize_checkpoint

GROUP = 32  # the tiny models are 16 to 128 wide


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, dense_dir, moe_dir):
    made = {}

    def get(kind: str, fmt: str):
        if (kind, fmt) not in made:
            src = dense_dir if kind == "dense" else moe_dir
            made[kind, fmt] = quantize_checkpoint(src, tmp_path_factory.mktemp(f"{kind}-{fmt}"), fmt, GROUP, progress=False)
        return made[kind, fmt]

    return get


def _inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 500, (1, 12), generator=g), torch.randint(0, 500, (1, 16), generator=g)


def _logits(model):
    prompt, canvas = _inputs()
    cache = model.new_cache()
    with torch.inference_mode():
        model.encode(prompt, cache)
        return model.denoise(canvas, cache)


def _quantizable(name: str) -> bool:
    return bool(QUANTIZED_LINEAR.match(name) or QUANTIZED_EXPERTS.match(name))


def _relative_error(got, want):
    got, want = got - got.mean(-1, keepdim=True), want - want.mean(-1, keepdim=True)  # softmax ignores shifts
    return float((got - want).norm() / want.norm())


def _round_fp8(x):
    q, s = quantize_activations_fp8(x.reshape(-1, x.shape[-1]))
    return (q.float() * s[:, None]).reshape(x.shape).to(x.dtype)


def _fp8_activation_hooks(model):
    """Round every quantized layer's input to e4m3 per token, as the fp8 matmul does."""
    for name, module in model.named_modules():
        if _quantizable(f"{name}.weight"):
            module.register_forward_pre_hook(lambda module, args: (_round_fp8(args[0]),))
        if isinstance(module, Experts):  # the dense tiny model is its single-expert form

            def expert(e, x, experts=module):
                gate, up = F.linear(_round_fp8(x), experts.gate_up_proj[e]).chunk(2, dim=-1)
                return F.linear(_round_fp8(F.gelu(gate, approximate="tanh") * up), experts.down_proj[e])

            module.expert = expert


@pytest.mark.parametrize("kind,fmt", [("dense", "int8"), ("dense", "int4"), ("dense", "fp8"),
                                      ("moe", "int8"), ("moe", "int4")])
def test_quantized_model_computes_its_dequantized_weights(quantized, dense_dir, moe_dir, kind, fmt):
    report = quantized(kind, fmt)
    loaded = load_model(report.directory, progress=False)
    assert loaded.quantization == fmt
    swapped = [m for m in loaded.model.modules() if isinstance(m, QuantLinear | QuantExperts)]
    assert swapped and all(m.fmt == fmt for m in swapped)
    fake = load_model(dense_dir if kind == "dense" else moe_dir, progress=False).model
    with torch.no_grad():
        for name, param in fake.named_parameters():
            if _quantizable(name):
                q, s = quantize_weight(param, fmt, GROUP)
                param.copy_(dequantize_weight(q, s, fmt))
    if fmt == "fp8":
        _fp8_activation_hooks(fake)
    torch.testing.assert_close(_logits(loaded.model), _logits(fake), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["dense", "moe"])
@pytest.mark.parametrize("fmt", ["int8", "int4"])
def test_quantization_error_is_rounding_sized(quantized, dense_dir, moe_dir, kind, fmt):
    src = dense_dir if kind == "dense" else moe_dir
    original = _logits(load_model(src, progress=False).model)
    got = _logits(load_model(quantized(kind, fmt).directory, progress=False).model)
    noisy = load_model(src, progress=False).model
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in noisy.named_parameters():
            if _quantizable(name):
                _, s = quantize_weight(param, fmt, GROUP)
                step = s[..., None].expand_as(param) if fmt == "int8" else s.repeat_interleave(GROUP, dim=-1)
                param.add_((torch.rand(param.shape, generator=g) - 0.5) * step)
    assert _relative_error(got, original) <= 2 * _relative_error(_logits(noisy), original)
    if fmt == "int8":
        assert _relative_error(got, original) < 0.5


def test_writer_output_is_a_sharded_safetensors_checkpoint(dense_dir, tmp_path):
    from safetensors import safe_open

    out = tmp_path / "q"
    report = quantize_checkpoint(dense_dir, out, "int4", GROUP, shard_bytes=64 * 1024, progress=False)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(report.shards) > 1 and set(index["weight_map"].values()) == set(report.shards)
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "dg_lsp"
    assert config["quantization_config"]["format"] == "int4"
    assert (out / "tokenizer.json").is_file() and (out / "generation_config.json").is_file()
    key = "model.decoder.layers.0.self_attn.q_proj.weight"
    with safe_open(str(out / index["weight_map"][key]), "pt") as f:
        assert f.get_tensor(key).dtype == torch.uint8
    with safe_open(str(out / index["weight_map"][key + "_scale"]), "pt") as f:
        assert f.get_tensor(key + "_scale").dtype == torch.float32
    embed = "model.decoder.embed_tokens.weight"
    with safe_open(str(out / index["weight_map"][embed]), "pt") as f:
        assert f.get_tensor(embed).is_floating_point()  # the embedding (tied LM head) stays as it was
    assert not list(out.glob("*.partial"))
    assert report.bytes_out < report.bytes_in


def test_writer_refuses_bad_inputs(dense_dir, tmp_path):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((dense_dir / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelLoadError, match="pickle"):
        quantize_checkpoint(pickled, tmp_path / "out1", "int8", progress=False)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("")
    with pytest.raises(InputError, match="not an empty directory"):
        quantize_checkpoint(dense_dir, busy, "int8", progress=False)
    done = tmp_path / "done"
    quantize_checkpoint(dense_dir, done, "int8", progress=False)
    with pytest.raises(InputError, match="already quantized"):
        quantize_checkpoint(done, tmp_path / "again", "int8", progress=False)


def test_loader_rejects_inconsistent_quantization(dense_dir, tmp_path):
    out = tmp_path / "q"
    quantize_checkpoint(dense_dir, out, "int8", progress=False)
    config = json.loads((out / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4}
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="gptq"):
        load_model(out, progress=False)
    del config["quantization_config"]
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="no quantization_config"):
        load_model(out, progress=False)
    config["quantization_config"] = {"quant_method": "dg_lsp", "format": "fp8"}  # payloads are int8
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="stored as torch.int8"):
        load_model(out, progress=False)


def test_cli_quantize_then_infill(dense_dir, tmp_path, capsys):
    out = tmp_path / "q4"
    assert cli.main(["quantize", "--bits", "4", "--group-size", str(GROUP), str(dense_dir), str(out)]) == 0
    assert "int4" in capsys.readouterr().out
    source = tmp_path / "a.py"
    source.write_text("def add(a, b):\n    return \n")
    code = cli.main(["infill", "--model", str(out), "--file", str(source), "--line", "2", "--column", "12",
                     "--steps", "2", "--canvas", "16", "--json", "--device", "cpu"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["nfe"] >= 1 and isinstance(result["text"], str)


def test_cli_quantize_reports_errors(tmp_path, capsys):
    assert cli.main(["quantize", "--bits", "8", str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind", ["dense", "moe"])
@pytest.mark.parametrize("fmt", ["int8", "int4", "fp8"])
def test_cuda_kernels_give_the_cpu_reference_logits(quantized, kind, fmt):
    directory = quantized(kind, fmt).directory
    cpu = _logits(load_model(directory, progress=False).model)
    gpu = load_model(directory, device="cuda", dtype=torch.float32, progress=False).model
    prompt, canvas = _inputs()
    cache = gpu.new_cache()
    with torch.inference_mode():
        gpu.encode(prompt.cuda(), cache)
        got = gpu.denoise(canvas.cuda(), cache).cpu()
    torch.testing.assert_close(got, cpu, atol=2e-2, rtol=2e-2)  # fp32 activations; tf32 dots on the GPU


@pytest.mark.parametrize("kind", ["dense", "moe"])
@pytest.mark.parametrize("fmt", ["int8", "int4", "fp8"])
def test_quantizing_at_load_equals_loading_a_quantized_checkpoint(quantized, dense_dir, moe_dir, kind, fmt):
    # The server's dgLsp.quantization setting: a checkpoint stored in float, quantized in memory.
    from dg_lsp.engine.engine import Engine
    from dg_lsp.model.quantize import quantize_loaded_model

    written = load_model(quantized(kind, fmt).directory, progress=False)
    loaded = load_model(dense_dir if kind == "dense" else moe_dir, progress=False)
    count = quantize_loaded_model(loaded.model, fmt, GROUP)
    assert count > 0
    assert torch.equal(_logits(loaded.model), _logits(written.model))
    engine = Engine.from_directory(dense_dir if kind == "dense" else moe_dir, progress=False, quantization=fmt)
    assert engine.loaded.quantization == fmt
    assert any(isinstance(m, QuantLinear) for m in engine.model.modules())
