"""Write a trained model as a Hugging Face model directory that dg-lsp (and transformers) load.

Tensor names follow the reference checkpoint: the shared weights under `model.decoder.*`,
the encoder's own layer scalars under `model.encoder.language_model.layers.N.layer_scalar`;
the LM head is tied to the embeddings and not stored.
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

_ENCODER_SCALAR = re.compile(r"^layers\.(\d+)\.encoder_layer_scalar$")

GENERATION_DEFAULTS = {
    "max_denoising_steps": 12,
    "t_max": 0.8,
    "t_min": 0.4,
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


def export_model(model: DiffusionGemma, config: dict[str, Any], tokenizer_path: Path, out_dir: Path,
                 dtype: torch.dtype = torch.bfloat16, extra_files: dict[str, str] | None = None) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(checkpoint_names(state), out_dir / "model.safetensors", metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps({**config, "dtype": str(dtype).removeprefix("torch.")}, indent=2))
    (out_dir / "generation_config.json").write_text(json.dumps(GENERATION_DEFAULTS, indent=2))
    # SPM order: the prompt ends with the prefix, so typing only extends the cached prompt.
    (out_dir / "dg_lsp.json").write_text(json.dumps({"fim_order": "spm"}, indent=2))
    shutil.copy(tokenizer_path, out_dir / "tokenizer.json")
    for name, text in (extra_files or {}).items():
        (out_dir / name).write_text(text)
    return out_dir
