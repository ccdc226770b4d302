"""Tiny random Dream-family checkpoints, built with transformers' own Qwen2 for the tests.

Each is a real checkpoint in the layout its family publishes (config.json, generation_config.json,
model.safetensors with `model.layers.N.self_attn.q_proj.weight`-style names, tokenizer.json,
tokenizer_config.json), made by `Qwen2ForCausalLM.save_pretrained` with random weights:

- "dream": config.json rewritten the way Dream / Dream-Coder / DiffuCoder publish it
  (`model_type` "Dream", `architectures` ["DreamModel"], `mask_token_id`, a flat `rope_theta`, no
  `head_dim`); untied LM head like the 7B models.
- "dreamon": the same plus DreamOn's expand token in the tokenizer and `expand_token_id` in config.json.
- "open_dcoder": left a plain Qwen2 config (`model_type` "qwen2"; nothing in it says "diffusion"),
  tied embeddings like Qwen2.5-Coder-0.5B, the mask token only in the tokenizer, and a
  `dg_lsp.json` `{"family": "dream"}` override (pass `override=False` to leave it out).

`reference_logits` runs the same weights through transformers' Qwen2ForCausalLM with every position
visible to every other (a 4-D all-zero float mask) and applies the published shift: the parity
reference for our model and for the decoders.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..tiny_models import SAMPLE_CODE, train_bpe_tokenizer

VOCAB = 512
PAD, BOS, MASK, EXPAND = "<|endoftext|>", "<|beginoftext|>", "<|mask|>", "<|expand|>"
VARIANTS = ("dream", "dreamon", "open_dcoder")


def special_tokens(variant: str) -> list[str]:
    """The tokenizer's special tokens in id order (0, 1, ...)."""
    return [PAD, BOS, MASK] + ([EXPAND] if variant == "dreamon" else [])


def build_tokenizer(path: Path, variant: str, vocab_size: int = VOCAB) -> None:
    train_bpe_tokenizer(path, special_tokens(variant), SAMPLE_CODE, vocab_size)


def build_tiny_dream(
    directory: Path,
    variant: str = "dream",
    vocab: int = VOCAB,
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    head_dim: int | None = None,
    rope_theta: float = 50_000.0,
    tie: bool | None = None,
    override: bool = True,
    max_shard_size: str | None = None,
) -> Path:
    """Save a random tiny checkpoint of `variant` into `directory` (created) and return it.

    Norm weights and the q/k/v biases are perturbed so that they matter. `tie` defaults to the
    family's published choice (untied for the 7B Dream models, tied for Open-dCoder-0.5B);
    `max_shard_size` (e.g. "100KB") writes sharded safetensors with an index; `head_dim` defaults to
    hidden / heads (the Dream layout then leaves it out of config.json, as Dream-org's do)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    build_tokenizer(directory / "tokenizer.json", variant, vocab)
    ids = {token: i for i, token in enumerate(special_tokens(variant))}
    tie = (variant == "open_dcoder") if tie is None else tie

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim or hidden // heads,
        rope_theta=rope_theta, max_position_embeddings=1024, tie_word_embeddings=tie,
        bos_token_id=ids[PAD] if variant == "open_dcoder" else ids[BOS],
        eos_token_id=ids[PAD], pad_token_id=ids[PAD],
    )
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
            elif name.endswith("bias"):
                param.copy_(torch.randn_like(param) * 0.1)
    model.save_pretrained(directory, **({"max_shard_size": max_shard_size} if max_shard_size else {}))

    if variant != "open_dcoder":
        _rewrite_as_dream(directory, ids, variant)
    elif override:
        (directory / "dg_lsp.json").write_text(json.dumps({"family": "dream"}) + "\n")
    _write_tokenizer_config(directory, variant)
    return directory


def _rewrite_as_dream(directory: Path, ids: dict[str, int], variant: str) -> None:
    """config.json in the layout of Dream-org's checkpoints (their DreamConfig fields)."""
    path = directory / "config.json"
    qwen = json.loads(path.read_text())
    dream = {
        "architectures": ["DreamModel"],
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
        "attention_dropout": 0.0,
        "bos_token_id": ids[BOS],
        "eos_token_id": ids[PAD],
        "pad_token_id": ids[PAD],
        "mask_token_id": ids[MASK],
        "hidden_act": "silu",
        "model_type": "Dream",
        "rope_scaling": None,
        "rope_theta": qwen["rope_parameters"]["rope_theta"],
        "torch_dtype": "float32",
        "use_cache": False,
        **{k: qwen[k] for k in ("hidden_size", "intermediate_size", "initializer_range", "max_position_embeddings",
                                "max_window_layers", "num_attention_heads", "num_hidden_layers",
                                "num_key_value_heads", "rms_norm_eps", "sliding_window", "tie_word_embeddings",
                                "use_sliding_window", "vocab_size")},
    }
    if variant == "dreamon":
        dream["expand_token_id"] = ids[EXPAND]
    if qwen["head_dim"] != qwen["hidden_size"] // qwen["num_attention_heads"]:
        dream["head_dim"] = qwen["head_dim"]
    path.write_text(json.dumps(dream, indent=2) + "\n")
    generation = {"bos_token_id": ids[BOS], "eos_token_id": ids[PAD], "pad_token_id": ids[PAD],
                  "mask_token_id": ids[MASK], "alg": "entropy", "steps": 512, "temperature": 0.2, "top_p": 0.95}
    (directory / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")


def _write_tokenizer_config(directory: Path, variant: str) -> None:
    config = {"bos_token": PAD if variant == "open_dcoder" else BOS, "eos_token": PAD, "pad_token": PAD,
              "mask_token": MASK, "tokenizer_class": "Qwen2Tokenizer"}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def token_id(directory: Path, token: str) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(directory) / "tokenizer.json")).token_to_id(token)


def reference_model(directory: Path):
    """transformers' Qwen2ForCausalLM holding the checkpoint's weights (float32, eval), whatever
    layout config.json is in (a Dream config cannot be loaded by transformers without remote code)."""
    from safetensors.torch import load_file
    from transformers import Qwen2Config, Qwen2ForCausalLM

    directory = Path(directory)
    raw = json.loads((directory / "config.json").read_text())
    rope_theta = raw.get("rope_theta") or raw["rope_parameters"]["rope_theta"]
    config = Qwen2Config(
        vocab_size=raw["vocab_size"], hidden_size=raw["hidden_size"], intermediate_size=raw["intermediate_size"],
        num_hidden_layers=raw["num_hidden_layers"], num_attention_heads=raw["num_attention_heads"],
        num_key_value_heads=raw["num_key_value_heads"],
        head_dim=raw.get("head_dim") or raw["hidden_size"] // raw["num_attention_heads"],
        rope_theta=rope_theta, rms_norm_eps=raw["rms_norm_eps"],
        tie_word_embeddings=raw["tie_word_embeddings"], max_position_embeddings=raw["max_position_embeddings"],
        attn_implementation="sdpa",
    )
    model = Qwen2ForCausalLM(config).eval()
    state = {}
    for shard in sorted(directory.glob("*.safetensors")):
        state.update(load_file(shard))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    if config.tie_word_embeddings:
        model.tie_weights()
    return model


@torch.no_grad()
def reference_logits(model, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Bidirectional float32 logits of `reference_model`, shifted as Dream publishes them:
    out[:, i] predicts token i (out = cat([raw[:, :1], raw[:, :-1]], 1)). input_ids: [B, L]."""
    b, length = input_ids.shape
    all_visible = torch.zeros(b, 1, length, length)  # additive mask: nothing hidden, no causal mask
    raw = model(input_ids=input_ids, attention_mask=all_visible, position_ids=position_ids).logits.float()
    return torch.cat([raw[:, :1], raw[:, :-1]], dim=1)
