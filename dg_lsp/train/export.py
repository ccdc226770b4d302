"""Write a trained model as a Hugging Face model directory that dg-lsp (and transformers) load.

Tensor names follow the reference checkpoint: the shared weights under `model.decoder.*`,
the encoder's own layer scalars under `model.encoder.language_model.layers.N.layer_scalar`;
the LM head is tied to the embeddings and not stored. Weights larger than `max_shard_bytes`
are split into `model-0000i-of-0000N.safetensors` with a `model.safetensors.index.json`, the
standard sharded layout (dg-lsp's loader and transformers both read it), for those who
want files of a bounded size.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ..model.diffusion_gemma import DiffusionGemma
from ..model.loader import INDEX_FILE

_ENCODER_SCALAR = re.compile(r"^layers\.(\d+)\.encoder_layer_scalar$")
_HEADER_BYTES = 128  # a safetensors file's length prefix and metadata

GENERATION_DEFAULTS = {
    "max_denoising_steps": 12,
    # The sampling temperature of a multi-step request, falling from t_max to t_min. Lower than
    # DiffusionGemma's own 0.8 -> 0.4: for the small models trained here it writes better lines
    # (benchmarks/confidence.py --invoked, docs/default-model.md). One step is unaffected: its
    # output is the argmax.
    "t_max": 0.1,
    "t_min": 0.05,
    "sampler_config": {"entropy_bound": 0.1, "_cls_name": "EntropyBoundSamplerConfig"},
    "stability_threshold": 1,
    "confidence_threshold": 0.005,
    "eos_token_id": 1,
    "pad_token_id": 0,
    "bos_token_id": 2,
}


def checkpoint_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our parameter names -> the reference checkpoint's."""
    out = {}
    for name, tensor in state.items():
        if m := _ENCODER_SCALAR.match(name):
            out[f"model.encoder.language_model.layers.{m.group(1)}.layer_scalar"] = tensor
        elif name.startswith("lm_head."):
            out[name] = tensor
        else:
            out[f"model.decoder.{name}"] = tensor
    return out


def save_weights(tensors: dict[str, torch.Tensor], out_dir: Path, max_shard_bytes: int | None = None) -> list[str]:
    """Write `tensors` as one safetensors file, or as shard files of at most `max_shard_bytes`
    each (a single tensor larger than that gets a shard of its own) plus the index. Weight files of
    an earlier export in `out_dir` are removed first, so no stale shard is left beside the new
    ones. Returns the file names written."""
    for old in [*out_dir.glob("model*.safetensors"), out_dir / INDEX_FILE]:
        old.unlink(missing_ok=True)
    groups: list[dict[str, torch.Tensor]] = [{}]
    size = _HEADER_BYTES
    for name, tensor in tensors.items():
        # The file's size: the data plus its header entry (name, dtype, shape, offsets: < name + 128).
        nbytes = tensor.numel() * tensor.element_size() + len(name.encode()) + 128
        if max_shard_bytes and groups[-1] and size + nbytes > max_shard_bytes:
            groups.append({})
            size = _HEADER_BYTES
        groups[-1][name] = tensor
        size += nbytes
    if len(groups) == 1:
        save_file(groups[0], out_dir / "model.safetensors", metadata={"format": "pt"})
        return ["model.safetensors"]
    names = [f"model-{i:05d}-of-{len(groups):05d}.safetensors" for i in range(1, len(groups) + 1)]
    weight_map = {}
    for name, group in zip(names, groups):
        save_file(group, out_dir / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(group, name))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return [*names, INDEX_FILE]


def export_model(model: DiffusionGemma, config: dict[str, Any], tokenizer_path: Path, out_dir: Path,
                 dtype: torch.dtype = torch.bfloat16, extra_files: dict[str, str] | None = None,
                 max_shard_bytes: int | None = None, context_tokens: int | None = None) -> Path:
    """`context_tokens`: the prompt length trained on, recorded in `dg_lsp.json` so the engine
    keeps prompts within it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    save_weights(checkpoint_names(state), out_dir, max_shard_bytes)
    (out_dir / "config.json").write_text(json.dumps({**config, "dtype": str(dtype).removeprefix("torch.")}, indent=2))
    (out_dir / "generation_config.json").write_text(json.dumps(GENERATION_DEFAULTS, indent=2))
    # SPM order: the prompt ends with the prefix, so typing only extends the cached prompt.
    # dg-lsp train's examples have no snippets of other files before the FIM prompt.
    options = {"fim_order": "spm", **({"context_tokens": context_tokens} if context_tokens else {}),
               "cross_file_context": False}
    (out_dir / "dg_lsp.json").write_text(json.dumps(options, indent=2))
    shutil.copy(tokenizer_path, out_dir / "tokenizer.json")
    for name, text in (extra_files or {}).items():
        (out_dir / name).write_text(text)
    return out_dir
