"""Loading checkpoints: the happy paths, and a clear error for each broken directory."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from dg_lsp.errors import ModelLoadError
from dg_lsp.model.loader import load_model

from .tiny_models import build_checkpoint


def copy_of(src, tmp_path):
    return shutil.copytree(src, tmp_path / "model")


def test_loads_model_tokenizer_and_generation_defaults(dense_dir):
    loaded = load_model(dense_dir, progress=False)
    assert loaded.config.hidden_size == 64 and loaded.config.canvas_length == 16
    assert [s.head_dim for s in loaded.config.layers] == [16, 32, 16, 32]  # full layers use the global head
    assert loaded.tokenizer.token_to_id("<|fim_middle|>") is not None
    assert loaded.sampler_defaults.max_denoising_steps == 48  # generation_config.json leaves them unset
    assert loaded.sampler_defaults.eos_token_ids == [1]
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())


def test_vision_tensors_are_skipped(dense_dir):
    keys = load_file(dense_dir / "model.safetensors").keys()
    assert any("vision_tower" in k for k in keys)
    loaded = load_model(dense_dir, progress=False)
    assert not any("vision" in name for name in loaded.model.state_dict())


def test_encoder_layer_scalars_are_kept_apart_from_the_decoder_ones(dense_dir):
    tensors = load_file(dense_dir / "model.safetensors")
    model = load_model(dense_dir, progress=False).model
    assert model.layers[0].encoder_layer_scalar == tensors["model.encoder.language_model.layers.0.layer_scalar"]
    assert model.layers[0].layer_scalar == tensors["model.decoder.layers.0.layer_scalar"]
    assert model.layers[0].layer_scalar != model.layers[0].encoder_layer_scalar


def test_sharded_checkpoint_loads_the_same_weights(tmp_path, dense_dir):
    pytest.importorskip("transformers")
    from transformers import DiffusionGemmaForBlockDiffusion

    sharded = tmp_path / "sharded"
    DiffusionGemmaForBlockDiffusion.from_pretrained(dense_dir).save_pretrained(sharded, max_shard_size="200KB")
    shutil.copy(dense_dir / "tokenizer.json", sharded)
    assert (sharded / "model.safetensors.index.json").is_file() and len(list(sharded.glob("*.safetensors"))) > 1
    a = load_model(dense_dir, progress=False).model.state_dict()
    b = load_model(sharded, progress=False).model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bfloat16_load(dense_dir):
    model = load_model(dense_dir, dtype=torch.bfloat16, progress=False).model
    assert model.embed_tokens.weight.dtype == torch.bfloat16
    cache = model.new_cache()
    model.encode(torch.tensor([[5, 6, 7]]), cache)
    assert torch.isfinite(model.denoise(torch.tensor([[1] * 16]), cache)).all()


def expect_error(path, *fragments, **kwargs):
    with pytest.raises(ModelLoadError) as err:
        load_model(path, progress=False, **kwargs)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_directory(tmp_path):
    expect_error(tmp_path / "nope", "model directory not found")


def test_directory_without_config(tmp_path):
    expect_error(tmp_path, "has no config.json")


def test_pickle_weights_are_refused(tmp_path, dense_dir):
    model = copy_of(dense_dir, tmp_path)
    (model / "model.safetensors").unlink()
    (model / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    expect_error(model, "pytorch_model.bin", "refuses to load pickle")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_safetensors(tmp_path, dense_dir, damage):
    model = copy_of(dense_dir, tmp_path)
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 100] if damage == "truncate" else b"\x10" * 64)
    expect_error(model, "corrupt or truncated safetensors file", "model.safetensors")


def test_missing_and_misshaped_tensors_are_named(tmp_path, dense_dir):
    model = copy_of(dense_dir, tmp_path)
    tensors = load_file(model / "model.safetensors")
    del tensors["model.decoder.layers.1.self_attn.q_proj.weight"]
    del tensors["model.decoder.norm.weight"]
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    expect_error(model, "missing 2 tensor(s)", "layers.1.self_attn.q_proj.weight", "norm.weight")

    tensors = load_file(dense_dir / "model.safetensors")
    tensors["model.decoder.layers.0.mlp.up_proj.weight"] = torch.zeros(3, 3)
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    expect_error(model, "mis-shaped", "model.decoder.layers.0.mlp.up_proj.weight is [3, 3], expected [128, 64]")


def test_index_naming_a_missing_shard(tmp_path, dense_dir):
    model = copy_of(dense_dir, tmp_path)
    (model / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"model.decoder.norm.weight": "model-00002-of-00002.safetensors"}})
    )
    expect_error(model, "missing", "model-00002-of-00002.safetensors")


@pytest.mark.parametrize("model_type", ["llama", None])
def test_unsupported_model_type(tmp_path, dense_dir, model_type):
    model = copy_of(dense_dir, tmp_path)
    config = json.loads((model / "config.json").read_text())
    config["model_type"] = model_type
    (model / "config.json").write_text(json.dumps(config))
    expect_error(model, f"model_type {model_type!r} is not supported")


def test_broken_config_json(tmp_path, dense_dir):
    model = copy_of(dense_dir, tmp_path)
    (model / "config.json").write_text("{ not json")
    expect_error(model, "cannot read", "config.json")


def test_missing_tokenizer(tmp_path):
    pytest.importorskip("transformers")
    model = build_checkpoint(tmp_path, moe=False, tokenizer=False)
    expect_error(model, "has no tokenizer.json")
    assert load_model(model, with_tokenizer=False, progress=False).tokenizer is None


def test_plain_dense_layers_when_num_experts_is_null(tmp_path, dense_dir):
    # A Gemma-4 style dense checkpoint (no routed block at all): the reference cannot build
    # one, but our own models may use it.
    model = copy_of(dense_dir, tmp_path)
    config = json.loads((model / "config.json").read_text())
    config["text_config"].update(num_experts=None, top_k_experts=None, moe_intermediate_size=None)
    (model / "config.json").write_text(json.dumps(config))
    routed = ("router", "experts", "feedforward_layernorm_1", "feedforward_layernorm_2")
    tensors = {k: v for k, v in load_file(model / "model.safetensors").items() if not any(r in k for r in routed)}
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    loaded = load_model(model, progress=False).model
    assert not any(any(r in name for r in routed) for name in loaded.state_dict())
    cache = loaded.new_cache()
    loaded.encode(torch.tensor([[3, 4, 5, 6]]), cache)
    assert torch.isfinite(loaded.denoise(torch.tensor([[7] * 16]), cache)).all()
