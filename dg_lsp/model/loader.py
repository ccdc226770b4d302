"""Load a DiffusionGemma checkpoint from a local Hugging Face directory.

The directory holds `config.json`, optionally `generation_config.json`, the weights as one
or many `*.safetensors` (with `model.safetensors.index.json` when sharded) and
`tokenizer.json`. Weights are read only from safetensors, never from pickle files. Tensors
are read from the memory-mapped files one at a time, converted to the chosen dtype and
placed on the chosen device, into a model built on the meta device (no second copy).

A checkpoint written by `dg-lsp quantize` says so in config.json (`quantization_config`,
`quant_method` "dg_lsp") and stores `X.weight_scale` beside each quantized `X.weight`: those
modules are swapped for their quantized stand-ins (`quant_modules`) before loading, and their
payloads and scales keep their stored dtypes.

The directory's family decides which model is built (`detect_family`): DiffusionGemma, or the
Dream family (Dream, Dream-Coder, DiffuCoder, DreamOn, Open-dCoder; loaded by `dream_loader`).
config.json's `model_type` tells them apart, and `dg_lsp.json` `{"family": ...}` overrides it: a
plain Qwen2 config.json cannot say whether its weights were trained as a diffusion model.

Every failure is a `ModelLoadError` with a message meant for the user.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from tokenizers import Tokenizer
from tqdm import tqdm

from ..errors import ModelLoadError
from ..kernels.quant_format import FORMATS
from .config import SUPPORTED_MODEL_TYPES, ConfigError, TextConfig, parse_config
from .dream_config import DREAM_MODEL_TYPES, QWEN2_MODEL_TYPES
from .diffusion_gemma import DiffusionGemma
from .quant_modules import quantized_module_names, swap_quantized_modules

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
INDEX_FILE = "model.safetensors.index.json"
OPTIONS_FILE = "dg_lsp.json"
FAMILIES = ("diffusion_gemma", "dream")
# Checkpoint names of the text weights. The decoder's copy is the one transformers saves;
# the encoder's copy is tied to it and only read when a checkpoint stores it instead.
_DECODER = re.compile(r"^model\.decoder\.(.+)$")
_ENCODER = re.compile(r"^model\.encoder\.language_model\.(.+)$")
_SKIPPED = re.compile(r"^model\.encoder\.(vision_tower|embed_vision|audio_tower|embed_audio)\.")
_ENCODER_SCALAR = re.compile(r"^layers\.(\d+)\.layer_scalar$")
_LAYER_SCALAR = re.compile(r"^layers\.(\d+)\.(encoder_)?layer_scalar$")
_LIST_LIMIT = 12


@dataclass
class SamplerDefaults:
    """Denoising settings from generation_config.json (reference defaults where unset)."""

    max_denoising_steps: int = 48
    t_max: float = 0.8
    t_min: float = 0.4
    entropy_bound: float = 0.1
    stability_threshold: int = 1
    confidence_threshold: float = 0.005
    eos_token_ids: list[int] = field(default_factory=list)
    pad_token_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # everything else in the file


@dataclass
class LoadedModel:
    model: DiffusionGemma
    config: TextConfig
    sampler_defaults: SamplerDefaults
    tokenizer: Tokenizer | None
    directory: Path
    device: torch.device
    dtype: torch.dtype
    tokenizer_config: dict[str, Any] = field(default_factory=dict)
    quantization: str | None = None  # "int8", "int4" or "fp8" for a quantized checkpoint
    family: str = "diffusion_gemma"


def default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def load_model(
    directory: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    with_tokenizer: bool = True,
    progress: bool = True,
):
    """The model in `directory`: a `LoadedModel` (DiffusionGemma) or, for the Dream family, a
    `dream_loader.LoadedDreamModel`; both say which in `.family`."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise ModelLoadError(f"model directory not found: {directory}")
    device = torch.device(device)
    dtype = dtype or default_dtype(device)
    if detect_family(directory) == "dream":
        from .dream_loader import load_dream_model  # it builds on this module's helpers

        return load_dream_model(directory, device, dtype, with_tokenizer, progress)

    config = _read_config(directory)
    quant_format = read_quantization_format(directory)
    defaults = read_sampler_defaults(directory, config)
    tokenizer, tokenizer_config = _read_tokenizer(directory) if with_tokenizer else (None, {})
    shards = _find_shards(directory)
    handles, where = _open_shards(shards)
    names = _checkpoint_name_map(list(where))

    with torch.device("meta"):
        model = DiffusionGemma(config)
        stored_dtype = _swap_quantized(model, quant_format, names, handles, where, directory)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    stored_dtype = {name: t.dtype for name, t in model.state_dict().items() if name in stored_dtype}
    state = _read_weights(handles, where, names, expected, device, dtype, progress, stored_dtype)
    model.load_state_dict(state, assign=True, strict=True)
    model.to(device).eval().requires_grad_(False)  # loaded for inference; training builds its own
    return LoadedModel(model, config, defaults, tokenizer, directory, device, dtype, tokenizer_config, quant_format)


# -- family, config, generation config, tokenizer -----------------------------------------


def detect_family(directory: str | Path) -> str:
    """The directory's model family, "diffusion_gemma" or "dream": the one `dg_lsp.json` names
    (`{"family": ...}`), else the one config.json's `model_type` says."""
    directory = Path(directory).expanduser()
    options_path = directory / OPTIONS_FILE
    if options_path.is_file():
        family = _read_json(options_path).get("family")
        if family is not None:
            if family not in FAMILIES:
                raise ModelLoadError(f"{options_path}: family must be one of {', '.join(map(repr, FAMILIES))}, "
                                     f"not {family!r}")
            return family
    path = directory / "config.json"
    if not path.is_file():
        raise ModelLoadError(f"{directory} has no config.json: is it a Hugging Face model directory?")
    model_type = _read_json(path).get("model_type")
    if model_type in SUPPORTED_MODEL_TYPES:
        return "diffusion_gemma"
    if model_type in DREAM_MODEL_TYPES:
        return "dream"
    if model_type in QWEN2_MODEL_TYPES:
        raise ModelLoadError(
            f"{path} describes a plain Qwen2 model (model_type {model_type!r}): an autoregressive model unless "
            "its weights were trained as a diffusion model, which nothing in config.json records (Open-dCoder "
            f"publishes exactly such a config){_mask_token_hint(directory)}. If this is a diffusion checkpoint, "
            f'write {{"family": "dream"}} to {options_path}'
        )
    raise ModelLoadError(
        f"model_type {model_type!r} is not supported; dg-lsp runs DiffusionGemma ({', '.join(SUPPORTED_MODEL_TYPES)}) "
        f'and the Dream family (model_type "Dream"; a Qwen2 diffusion checkpoint such as Open-dCoder with '
        f'{OPTIONS_FILE} {{"family": "dream"}})'
    )


def _mask_token_hint(directory: Path) -> str:
    """A hint, not proof: autoregressive Qwen2 tokenizers define no mask token, Open-dCoder's does."""
    path = directory / "tokenizer_config.json"
    try:
        mask = json.loads(path.read_text(encoding="utf-8")).get("mask_token") if path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return ""
    mask = mask.get("content") if isinstance(mask, dict) else mask
    return f"; its tokenizer does define a mask token ({mask}), as a diffusion model's would" if mask else ""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"cannot read {path}: {err}") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} does not hold a JSON object")
    return data


def _read_config(directory: Path) -> TextConfig:
    path = directory / "config.json"
    if not path.is_file():
        raise ModelLoadError(f"{directory} has no config.json: is it a Hugging Face model directory?")
    try:
        return parse_config(_read_json(path))
    except (ConfigError, TypeError) as err:
        raise ModelLoadError(f"{path}: {err}") from None


def read_quantization_format(directory: Path) -> str | None:
    """The `dg-lsp quantize` format named in config.json, or None for an unquantized checkpoint."""
    raw = _read_json(directory / "config.json").get("quantization_config")
    if raw is None:
        return None
    method = raw.get("quant_method") if isinstance(raw, dict) else None
    if method != "dg_lsp":
        raise ModelLoadError(
            f"{directory / 'config.json'} names quantization {method!r}; dg-lsp loads only its own "
            "(`dg-lsp quantize --bits 8|4|fp8 SRC DST` writes it from the bf16 checkpoint)"
        )
    fmt = raw.get("format")
    if fmt not in FORMATS:
        raise ModelLoadError(f"{directory / 'config.json'}: unknown quantization format {fmt!r}, expected one of {FORMATS}")
    return fmt


def read_sampler_defaults(directory: Path, config: TextConfig) -> SamplerDefaults:
    path = directory / "generation_config.json"
    raw = _read_json(path) if path.is_file() else {}
    out = SamplerDefaults()
    for name in ("max_denoising_steps", "t_max", "t_min", "stability_threshold", "confidence_threshold"):
        if raw.get(name) is not None:
            setattr(out, name, type(getattr(out, name))(raw[name]))
    sampler = raw.get("sampler_config") or {}
    if isinstance(sampler, dict) and sampler.get("entropy_bound") is not None:
        out.entropy_bound = float(sampler["entropy_bound"])
    eos = raw.get("eos_token_id", config.eos_token_id)
    out.eos_token_ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    out.pad_token_id = raw.get("pad_token_id", config.pad_token_id)
    out.extra = raw
    return out


def _read_tokenizer(directory: Path) -> tuple[Tokenizer, dict[str, Any]]:
    path = directory / "tokenizer.json"
    if not path.is_file():
        raise ModelLoadError(f"{directory} has no tokenizer.json")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # the tokenizers library raises plain Exceptions
        raise ModelLoadError(f"cannot read {path}: {err}") from None
    extra = directory / "tokenizer_config.json"
    return tokenizer, _read_json(extra) if extra.is_file() else {}


# -- weights ---------------------------------------------------------------------------


def _find_shards(directory: Path) -> list[Path]:
    index = directory / INDEX_FILE
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelLoadError(f"{index} has no weight_map")
        shards = sorted({directory / name for name in weight_map.values()})
        missing = [p.name for p in shards if not p.is_file()]
        if missing:
            raise ModelLoadError(f"{index} lists shard files that are missing: {_names(missing)}")
        return shards
    shards = sorted(directory.glob("*.safetensors"))
    if shards:
        return shards
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelLoadError(
            f"{directory} holds only pickle weights ({_names(pickles)}); dg-lsp refuses to load pickle files, "
            "which can run code. Convert them to safetensors first."
        )
    raise ModelLoadError(f"{directory} has no *.safetensors weights")


def _checkpoint_name_map(keys: list[str]) -> dict[str, str]:
    """Our parameter name -> checkpoint key. The decoder's copy wins over the encoder's;
    the encoder's `layer_scalar` is its own tensor (`encoder_layer_scalar` here)."""
    ours: dict[str, str] = {}
    for key in sorted(keys, key=lambda k: _DECODER.match(k) is None):  # decoder keys first
        if _SKIPPED.match(key):
            continue
        if m := _DECODER.match(key):
            ours.setdefault(m.group(1), key)
        elif m := _ENCODER.match(key):
            name = m.group(1)
            if s := _ENCODER_SCALAR.match(name):
                ours[f"layers.{s.group(1)}.encoder_layer_scalar"] = key
            else:
                ours.setdefault(name, key)
        elif key == "lm_head.weight":
            ours[key] = key
    return ours


def _open_shards(shards: list[Path]) -> tuple[dict, dict[str, Path]]:
    """(safetensors handle per shard, shard of every checkpoint key); nothing is read yet."""
    handles = {}
    for shard in shards:
        try:
            handles[shard] = safe_open(str(shard), framework="pt", device="cpu")
        except (SafetensorError, OSError) as err:
            raise ModelLoadError(f"corrupt or truncated safetensors file {shard}: {err}") from None
    return handles, {key: shard for shard, h in handles.items() for key in h.keys()}


def _swap_quantized(model, quant_format, names, handles, where, directory) -> set[str]:
    """Swap in the quantized modules the checkpoint has scales for; returns the state-dict
    names whose stored dtype is kept (payloads and scales)."""
    modules = quantized_module_names(list(names))
    if not modules:
        if quant_format is not None:
            raise ModelLoadError(f"{directory}/config.json says the weights are {quant_format}-quantized, "
                                 "but the checkpoint holds no quantization scales")
        return set()
    if quant_format is None:
        raise ModelLoadError(f"{directory} holds quantized weights but config.json has no quantization_config")
    scale_shapes = {
        name: tuple(handles[where[names[name]]].get_slice(names[name]).get_shape())
        for name in names if name.endswith("_scale")
    }
    try:
        return swap_quantized_modules(model, modules, quant_format, scale_shapes)
    except (KeyError, ValueError, AttributeError) as err:
        raise ModelLoadError(f"{directory}: quantized tensors do not fit the model: {err}") from None


def _read_weights(handles, where, names, expected: dict[str, tuple], device, dtype, progress: bool,
                  stored_dtype: dict[str, torch.dtype] | None = None) -> dict[str, torch.Tensor]:
    """Every expected tensor, converted to `dtype` on `device`; quantized payloads and scales
    (`stored_dtype`: name -> the dtype the module needs) are checked and kept as stored."""
    stored_dtype = stored_dtype or {}
    _fill_layer_scalars(names, expected)

    missing = sorted(n for n in expected if n not in names and not _LAYER_SCALAR.match(n))
    if missing:
        raise ModelLoadError(f"checkpoint is missing {len(missing)} tensor(s): {_names(missing)}")
    wrong = []
    for name, shape in expected.items():
        if name in names:
            got = tuple(handles[where[names[name]]].get_slice(names[name]).get_shape())
            if got != shape:
                wrong.append(f"{names[name]} is {list(got)}, expected {list(shape)}")
    if wrong:
        raise ModelLoadError(f"checkpoint has {len(wrong)} mis-shaped tensor(s): {_names(wrong)}")

    state = {}
    for name in tqdm(expected, desc="loading weights", unit="tensor", disable=not progress, leave=False):
        if name not in names:  # a layer scalar the checkpoint leaves out: the reference's init value
            state[name] = torch.ones(expected[name], dtype=dtype, device=device)
            continue
        try:
            tensor = handles[where[names[name]]].get_tensor(names[name])
        except (SafetensorError, OSError) as err:
            raise ModelLoadError(f"cannot read tensor {names[name]}: {err}") from None
        if name in stored_dtype and tensor.dtype != stored_dtype[name]:
            raise ModelLoadError(f"{names[name]} is stored as {tensor.dtype}, but the quantization format needs "
                                 f"{stored_dtype[name]}")
        state[name] = tensor.to(device=device, dtype=None if name in stored_dtype else dtype)
    return state


def _fill_layer_scalars(names: dict[str, str], expected: dict[str, tuple]) -> None:
    """A mode whose layer scalar is not stored uses the other mode's (they start equal)."""
    for name in expected:
        if m := _LAYER_SCALAR.match(name):
            other = f"layers.{m.group(1)}.{'' if m.group(2) else 'encoder_'}layer_scalar"
            if name not in names and other in names:
                names[name] = names[other]


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_LIST_LIMIT])
    return shown + (f" and {len(items) - _LIST_LIMIT} more" if len(items) > _LIST_LIMIT else "")
