"""Load a Dream-family checkpoint (Dream, Dream-Coder, DiffuCoder, DreamOn, Open-dCoder).

Their safetensors use Qwen2's names as published (`model.layers.N.self_attn.q_proj.weight`,
`model.embed_tokens.weight`, `model.norm.weight`, `lm_head.weight`; sharded ones with
`model.safetensors.index.json`); our parameter names are the same without the leading `model.`.
A tied checkpoint has no `lm_head.weight` (one that stores it anyway has it ignored). The mask token
comes from config.json (`mask_token_id`) or else from the tokenizer: `mask_token` in
tokenizer_config.json (Open-dCoder's route), or a `<|mask|>` token in tokenizer.json. DreamOn's
expand token likewise (`expand_token_id`, or `<|expand|>` / `[expand]` in tokenizer.json).

Pickle refusal, shard checks, quantized checkpoints (`dg-lsp quantize`) and every error message are
the DiffusionGemma loader's own (`loader`), reused here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from ..errors import ModelLoadError
from .config import ConfigError
from .dream import DreamModel
from .dream_config import DreamConfig, parse_dream_config
from .loader import (
    _find_shards,
    _open_shards,
    _read_json,
    _read_tokenizer,
    _read_weights,
    _swap_quantized,
    read_quantization_format,
)

_MODEL_KEY = re.compile(r"^model\.(.+)$")
MASK_TOKENS = ("<|mask|>",)
EXPAND_TOKENS = ("<|expand|>", "[expand]")


@dataclass
class LoadedDreamModel:
    model: DreamModel
    config: DreamConfig
    tokenizer: Tokenizer | None
    directory: Path
    device: torch.device
    dtype: torch.dtype
    tokenizer_config: dict[str, Any] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)  # generation_config.json as published
    quantization: str | None = None  # "int8", "int4" or "fp8" for a quantized checkpoint
    family: str = "dream"


def load_dream_model(directory: Path, device: torch.device, dtype: torch.dtype, with_tokenizer: bool = True,
                     progress: bool = True) -> LoadedDreamModel:
    """Called by `loader.load_model` once the directory is known to hold a Dream-family model."""
    tokenizer, tokenizer_config = _read_tokenizer(directory) if with_tokenizer else read_optional_tokenizer(directory)
    config = read_dream_config(directory, tokenizer, tokenizer_config)
    quant_format = read_quantization_format(directory)
    generation_path = directory / "generation_config.json"
    generation = _read_json(generation_path) if generation_path.is_file() else {}
    handles, where = _open_shards(_find_shards(directory))
    names = checkpoint_name_map(list(where), config)

    with torch.device("meta"):
        model = DreamModel(config)
        kept_dtype = _swap_quantized(model, quant_format, names, handles, where, directory)
    state_dict = model.state_dict()
    expected = {name: tuple(t.shape) for name, t in state_dict.items()}
    stored_dtype = {name: t.dtype for name, t in state_dict.items() if name in kept_dtype}
    state = _read_weights(handles, where, names, expected, device, dtype, progress, stored_dtype)
    model.load_state_dict(state, assign=True, strict=True)
    model.to(device).eval().requires_grad_(False)  # inv_freq was built on the CPU
    return LoadedDreamModel(model, config, tokenizer if with_tokenizer else None, directory, device, dtype,
                            tokenizer_config, generation, quant_format)


def read_dream_config(directory: Path, tokenizer: Tokenizer | None = None,
                      tokenizer_config: dict[str, Any] | None = None) -> DreamConfig:
    path = directory / "config.json"
    if not path.is_file():
        raise ModelLoadError(f"{directory} has no config.json: is it a Hugging Face model directory?")
    ids = tokenizer_special_ids(tokenizer, tokenizer_config or {}) if tokenizer is not None else {}
    try:
        return parse_dream_config(_read_json(path), ids)
    except (ConfigError, TypeError, ValueError) as err:
        raise ModelLoadError(f"{path}: {err}") from None


def tokenizer_special_ids(tokenizer: Tokenizer, tokenizer_config: dict[str, Any]) -> dict[str, int | None]:
    """The mask and expand ids the tokenizer defines (None where it has none)."""
    def first_known(tokens) -> int | None:
        return next((i for t in tokens if t and (i := tokenizer.token_to_id(t)) is not None), None)

    named = tokenizer_config.get("mask_token")
    if isinstance(named, dict):
        named = named.get("content")
    return {"mask_token_id": first_known((named, *MASK_TOKENS)), "expand_token_id": first_known(EXPAND_TOKENS)}


def checkpoint_name_map(keys: list[str], config: DreamConfig) -> dict[str, str]:
    """Our parameter name -> checkpoint key."""
    ours = {m.group(1): key for key in keys if (m := _MODEL_KEY.match(key))}
    if not config.tie_word_embeddings and "lm_head.weight" in keys:
        ours["lm_head.weight"] = "lm_head.weight"
    return ours


def read_optional_tokenizer(directory: Path) -> tuple[Tokenizer | None, dict[str, Any]]:
    """Without `with_tokenizer` the tokenizer is still read, when present, for the mask token id."""
    if not (directory / "tokenizer.json").is_file():
        return None, {}
    return _read_tokenizer(directory)
