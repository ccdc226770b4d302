"""Loading Dream-family checkpoints: family detection, the override, special tokens, and a clear
error for each broken directory (the DiffusionGemma loader's messages)."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from dg_lsp.errors import ModelLoadError
from dg_lsp.model.dream import DreamModel
from dg_lsp.model.loader import detect_family, load_model

from .tiny_dream import EXPAND, MASK, build_tiny_dream, token_id

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def dream_dir(tmp_path_factory):
    return build_tiny_dream(tmp_path_factory.mktemp("dream"), variant="dream")


@pytest.fixture(scope="module")
def open_dcoder_dir(tmp_path_factory):
    return build_tiny_dream(tmp_path_factory.mktemp("odc"), variant="open_dcoder")


def copy_of(src, tmp_path):
    return shutil.copytree(src, tmp_path / "model")


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def expect_error(path, *fragments, **kwargs):
    with pytest.raises(ModelLoadError) as err:
        load_model(path, progress=False, **kwargs)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_dream_checkpoint_loads_with_its_config_and_tokens(dream_dir):
    loaded = load_model(dream_dir, progress=False)
    assert loaded.family == "dream" and isinstance(loaded.model, DreamModel)
    cfg = loaded.config
    assert (cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim) == (64, 4, 2, 16)
    assert cfg.rope_theta == 50_000.0 and not cfg.tie_word_embeddings and not cfg.variable_length
    assert cfg.mask_token_id == token_id(dream_dir, MASK)
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (1, 0, 0)
    assert loaded.generation["alg"] == "entropy" and loaded.tokenizer is not None
    assert loaded.model.lm_head is not None
    assert all(not p.requires_grad for p in loaded.model.parameters())


def test_every_published_tensor_is_read(dream_dir):
    tensors = load_file(dream_dir / "model.safetensors")
    state = load_model(dream_dir, progress=False).model.state_dict()
    assert len(state) == len(tensors)
    for key, tensor in tensors.items():
        assert torch.equal(state[key.removeprefix("model.")], tensor), key


def test_dreamon_has_the_expand_token_and_variable_length(tmp_path):
    directory = build_tiny_dream(tmp_path / "on", variant="dreamon")
    cfg = load_model(directory, progress=False).config
    assert cfg.variable_length and cfg.expand_token_id == token_id(directory, EXPAND)
    # The expand token is also found in the tokenizer when config.json does not name it.
    edit_json(directory / "config.json", expand_token_id=None)
    cfg = load_model(directory, progress=False).config
    assert cfg.variable_length and cfg.expand_token_id == token_id(directory, EXPAND)


def test_families_are_told_apart(dream_dir, open_dcoder_dir, dense_dir):
    assert detect_family(dream_dir) == "dream"
    assert detect_family(open_dcoder_dir) == "dream"  # through its dg_lsp.json
    assert detect_family(dense_dir) == "diffusion_gemma"
    assert load_model(dense_dir, progress=False).family == "diffusion_gemma"


def test_open_dcoder_is_tied_and_takes_its_mask_from_the_tokenizer(open_dcoder_dir):
    assert "mask_token_id" not in json.loads((open_dcoder_dir / "config.json").read_text())
    loaded = load_model(open_dcoder_dir, progress=False)
    assert loaded.config.tie_word_embeddings and loaded.model.lm_head is None
    assert loaded.config.mask_token_id == token_id(open_dcoder_dir, MASK)
    # Without with_tokenizer the mask still comes from the tokenizer files.
    assert load_model(open_dcoder_dir, with_tokenizer=False, progress=False).config.mask_token_id == 2


def test_plain_qwen2_needs_the_override(tmp_path):
    directory = build_tiny_dream(tmp_path / "odc", variant="open_dcoder", override=False)
    message = expect_error(directory, "plain Qwen2", "dg_lsp.json", '{"family": "dream"}',
                           "its tokenizer does define a mask token (<|mask|>)")
    assert str(directory) in message
    edit_json(directory / "tokenizer_config.json", mask_token=None)
    assert "mask token" not in expect_error(directory, "plain Qwen2")


def test_the_override_wins_and_is_checked(tmp_path, dream_dir):
    model = copy_of(dream_dir, tmp_path)
    (model / "dg_lsp.json").write_text(json.dumps({"family": "diffusion_gemma", "context_tokens": 64}))
    expect_error(model, "model_type 'Dream' is not supported")  # DiffusionGemma's parser was asked
    (model / "dg_lsp.json").write_text(json.dumps({"family": "llada"}))
    expect_error(model, "dg_lsp.json", "family must be one of", "'llada'")
    (model / "dg_lsp.json").write_text(json.dumps({"context_tokens": 64}))  # options without a family
    assert load_model(model, progress=False).family == "dream"


def test_mask_token_found_in_tokenizer_json_alone(tmp_path, open_dcoder_dir):
    model = copy_of(open_dcoder_dir, tmp_path)
    edit_json(model / "tokenizer_config.json", mask_token=None)
    assert load_model(model, progress=False).config.mask_token_id == token_id(model, MASK)


def test_no_mask_token_anywhere(tmp_path, open_dcoder_dir):
    model = copy_of(open_dcoder_dir, tmp_path)
    edit_json(model / "tokenizer_config.json", mask_token=None)
    tokenizer = json.loads((model / "tokenizer.json").read_text())
    tokenizer["added_tokens"] = [t for t in tokenizer["added_tokens"] if t["content"] != MASK]
    tokenizer["model"]["vocab"].pop(MASK)
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    expect_error(model, "config.json", "no mask token", "mask_token_id")


def test_sharded_checkpoint_loads_the_same_weights(tmp_path, dream_dir):
    sharded = build_tiny_dream(tmp_path / "sharded", variant="dream", max_shard_size="100KB")
    assert (sharded / "model.safetensors.index.json").is_file() and len(list(sharded.glob("*.safetensors"))) > 1
    a = load_model(dream_dir, progress=False).model.state_dict()
    b = load_model(sharded, progress=False).model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pickle_only_is_refused(tmp_path, dream_dir):
    model = copy_of(dream_dir, tmp_path)
    torch.save(load_file(model / "model.safetensors"), model / "pytorch_model.bin")
    (model / "model.safetensors").unlink()
    expect_error(model, "pytorch_model.bin", "refuses to load pickle files")


def test_missing_and_misshaped_tensors(tmp_path, dream_dir):
    model = copy_of(dream_dir, tmp_path)
    tensors = load_file(dream_dir / "model.safetensors")
    del tensors["lm_head.weight"], tensors["model.layers.1.self_attn.k_proj.bias"]
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    expect_error(model, "missing 2 tensor(s)", "lm_head.weight", "layers.1.self_attn.k_proj.bias")

    tensors = load_file(dream_dir / "model.safetensors")
    tensors["model.layers.0.self_attn.q_proj.weight"] = torch.zeros(3, 3)
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    expect_error(model, "mis-shaped", "model.layers.0.self_attn.q_proj.weight is [3, 3], expected [64, 64]")


def test_a_tied_checkpoint_storing_lm_head_uses_the_embedding(tmp_path, open_dcoder_dir):
    model = copy_of(open_dcoder_dir, tmp_path)
    tensors = load_file(model / "model.safetensors")
    tensors["lm_head.weight"] = torch.zeros_like(tensors["model.embed_tokens.weight"])
    save_file(tensors, model / "model.safetensors", metadata={"format": "pt"})
    loaded = load_model(model, progress=False).model
    assert loaded.lm_head is None
    assert torch.equal(loaded.embed_tokens.weight, tensors["model.embed_tokens.weight"])


@pytest.mark.parametrize("changes, fragments", [
    ({"rope_scaling": {"type": "yarn", "factor": 4.0}}, ("RoPE scaling 'yarn' is not supported",)),
    ({"hidden_act": "gelu"}, ("hidden_act 'gelu'",)),
    ({"num_key_value_heads": 3}, ("4 attention heads do not split into 3",)),
    ({"use_sliding_window": True}, ("use_sliding_window",)),
    ({"mask_token_id": 9999}, ("mask_token_id 9999 is outside the vocabulary",)),
    ({"hidden_size": None}, ("hidden_size is missing",)),
])
def test_configs_it_cannot_run(tmp_path, dream_dir, changes, fragments):
    model = copy_of(dream_dir, tmp_path)
    edit_json(model / "config.json", **changes)
    expect_error(model, "config.json", *fragments)


def test_unknown_model_type_names_both_families(tmp_path, dream_dir):
    model = copy_of(dream_dir, tmp_path)
    edit_json(model / "config.json", model_type="llama")
    expect_error(model, "model_type 'llama' is not supported", "DiffusionGemma", "Dream")
