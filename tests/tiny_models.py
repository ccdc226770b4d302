"""Tiny random DiffusionGemma checkpoints, built with the HF reference for the tests.

These are real checkpoints in the Hugging Face layout (config.json, generation_config.json,
model.safetensors, tokenizer.json), made by transformers' `save_pretrained`, with random
weights: they test loading, parity and plumbing, not quality.
"""

from __future__ import annotations

from pathlib import Path

import torch

VOCAB = 512
# Special tokens first, so their ids match the config's pad 0 / eos 1 / bos 2.
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_separator|>"]
SAMPLE_CODE = '''
import os
import sys
from dataclasses import dataclass


def fibonacci(n: int) -> int:
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)

    def pop(self):
        return self.items.pop()


function add(a, b) { return a + b; }
const total = [1, 2, 3].map((x) => x * 2).reduce(add, 0);
export interface Point { x: number; y: number }
'''


def build_tokenizer(path: Path, vocab_size: int = VOCAB, with_fim: bool = True) -> None:
    specials = SPECIAL_TOKENS if with_fim else [t for t in SPECIAL_TOKENS if "fim" not in t]
    train_bpe_tokenizer(path, specials, SAMPLE_CODE, vocab_size)


def train_bpe_tokenizer(path: Path, special_tokens: list[str], sample: str, vocab_size: int = VOCAB) -> None:
    """A byte-level BPE tokenizer trained on `sample`, the special tokens first (ids 0, 1, ...)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special_tokens, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator([sample] * 20, trainer=trainer)
    tokenizer.save(str(path))


def tiny_config(moe: bool, canvas_length: int = 16, sliding_window: int = 8, vocab_size: int = VOCAB):
    from transformers import DiffusionGemmaConfig

    text = dict(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        global_head_dim=32, num_global_key_value_heads=1, sliding_window=sliding_window,
        layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
        # The reference always adds the routed block; "dense" is its single-expert form.
        num_experts=4 if moe else 1, top_k_experts=2 if moe else 1, moe_intermediate_size=32 if moe else 96,
    )
    vision = dict(model_type="gemma4_vision", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=2, head_dim=16)
    return DiffusionGemmaConfig(text_config=text, vision_config=vision, canvas_length=canvas_length)


def build_checkpoint(directory: Path, moe: bool, seed: int = 0, tokenizer: bool = True, **config) -> Path:
    """Save a random reference model (norm weights and layer scalars perturbed so that
    they matter) plus a tokenizer into `directory`."""
    from transformers import DiffusionGemmaForBlockDiffusion

    torch.manual_seed(seed)
    model = DiffusionGemmaForBlockDiffusion(tiny_config(moe, **config)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or "scale" in name:
                param.add_(torch.randn_like(param) * 0.1)
        for name, buffer in model.named_buffers():
            if name.endswith("layer_scalar"):
                buffer.uniform_(0.5, 1.5)
    model.save_pretrained(directory)
    if tokenizer:
        build_tokenizer(directory / "tokenizer.json")
    return directory


def build_constant_model(directory: Path, token: str = "x") -> Path:
    """A tiny checkpoint whose every canvas position predicts `token` (a fake model, for the
    server's end-to-end tests, made from a real checkpoint by editing its weights).

    Every embedding row is the same vector and every layer's output projections are zero, so
    the decoder's final hidden state is one constant direction; an untied LM head whose row for
    `token` points along it makes that token win with near-certainty. Completions are then
    predictable ("xxxx..."), valid in most code positions; the adaptive stop is disabled, so a
    request takes exactly the configured number of denoising steps.
    """
    import json

    from safetensors.torch import load_file, save_file
    from tokenizers import Tokenizer

    build_checkpoint(directory, moe=False)
    token_id = Tokenizer.from_file(str(directory / "tokenizer.json")).token_to_id(token)
    tensors = load_file(directory / "model.safetensors")
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(tensors["model.decoder.embed_tokens.weight"].shape[1], generator=generator)
    tensors["model.decoder.embed_tokens.weight"][:] = direction * 0.05
    for name, tensor in tensors.items():
        if name.endswith(("o_proj.weight", "down_proj.weight", "experts.down_proj")):
            tensor.zero_()
        if name.endswith("norm.weight") and "decoder" in name:
            tensor.fill_(1.0)
    lm_head = torch.randn(VOCAB, direction.shape[0], generator=generator) * 0.01
    lm_head[token_id] = direction / direction.norm() * 40.0
    tensors["lm_head.weight"] = lm_head
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((directory / "config.json").read_text())
    config["tie_word_embeddings"] = config["text_config"]["tie_word_embeddings"] = False
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    # Never stop early, so the number of denoising steps (a setting) sets how long a request takes.
    generation = json.loads((directory / "generation_config.json").read_text())
    generation.update(stability_threshold=1000, confidence_threshold=1e-9)
    (directory / "generation_config.json").write_text(json.dumps(generation, indent=2))
    # Healing would make the first token one that extends the cursor's token, which this fake
    # model knows nothing of: it writes "x" everywhere only with the prompt left as it is.
    (directory / "dg_lsp.json").write_text(json.dumps({"token_healing": False}))
    return directory


def assert_decoder_matches_reference(model_dir: Path, prompt: torch.Tensor, canvas: torch.Tensor, tol: float) -> None:
    """Load `model_dir` in transformers' reference and in dg-lsp; the decoder logits for `canvas`
    after encoding `prompt` must agree within `tol`."""
    from transformers import DiffusionGemmaForBlockDiffusion
    from transformers.cache_utils import DynamicCache

    from dg_lsp.model.loader import load_model

    ref = DiffusionGemmaForBlockDiffusion.from_pretrained(model_dir, dtype=torch.float32).eval()
    ours = load_model(model_dir, progress=False).model
    cache = DynamicCache(config=ref.config.get_text_config(decoder=True))
    with torch.no_grad():
        ref.model.encoder(input_ids=prompt, past_key_values=cache)
        expected = ref(decoder_input_ids=canvas, past_key_values=cache).logits
    kv = ours.new_cache()
    with torch.inference_mode():
        ours.encode(prompt, kv)
        got = ours.denoise(canvas, kv)
    torch.testing.assert_close(got, expected, atol=tol, rtol=tol)
