"""Write a quantized copy of a checkpoint: `dg-lsp quantize --bits 8|4|fp8 SRC DST`.

Streams tensor by tensor from the memory-mapped safetensors of SRC (the 26B model is ~52 GB
in bf16 and is never held whole), quantizes the weights `quant_modules.QUANTIZED_LINEAR` /
`QUANTIZED_EXPERTS` name (per output channel for int8 and fp8, per group of `group_size` input
columns for int4; 3-D expert tensors expert by expert) and copies every other tensor as is.
The output is sharded safetensors (at most `shard_bytes` each, with an index), config.json
with a `quantization_config` entry that the loader reads, and SRC's tokenizer and generation
files. Pickle weights are refused. Both families work: DiffusionGemma (`model.decoder.*` and the
encoder's copy) and the Dream family (`model.layers.*`, Qwen2 names; the q/k/v biases are kept
unquantized beside their quantized weights).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from ..errors import InputError, ModelLoadError
from ..kernels.quant_format import FORMATS, int4_group_size, quantize_weight
from .config import ConfigError, parse_config
from .loader import _DECODER, _ENCODER, INDEX_FILE, PICKLE_SUFFIXES, _find_shards, _read_json, detect_family
from .quant_modules import QUANTIZED_EXPERTS, QUANTIZED_LINEAR, SCALE_SUFFIX, swap_quantized_modules

BITS_TO_FORMAT = {"8": "int8", "4": "int4", "fp8": "fp8"}
DEFAULT_GROUP_SIZE = 128
DEFAULT_SHARD_BYTES = 4 * 2**30
KEPT_DESCRIPTION = "embed_tokens (tied LM head), lm_head, router, norms, scales, layer scalars, non-text towers"
KEPT_BY_FAMILY = {"diffusion_gemma": KEPT_DESCRIPTION, "dream": "embed_tokens, lm_head, norms, q/k/v biases"}
_DREAM_KEY = re.compile(r"^model\.(layers\..+)$")


@dataclass
class QuantizeReport:
    format: str
    directory: Path
    quantized: list[str] = field(default_factory=list)  # checkpoint keys
    kept: list[str] = field(default_factory=list)  # keys copied unchanged
    skipped: list[str] = field(default_factory=list)  # quantizable keys left unquantized (and why)
    bytes_in: int = 0
    bytes_out: int = 0
    shards: list[str] = field(default_factory=list)


def format_for_bits(bits: str) -> str:
    if str(bits) not in BITS_TO_FORMAT:
        raise InputError(f"--bits must be 8, 4 or fp8, got {bits!r}")
    return BITS_TO_FORMAT[str(bits)]


def quantizable(key: str, family: str = "diffusion_gemma") -> bool:
    """Whether checkpoint key `key` is a weight that this format quantizes."""
    m = _DREAM_KEY.match(key) if family == "dream" else _DECODER.match(key) or _ENCODER.match(key)
    return bool(m) and bool(QUANTIZED_LINEAR.match(m.group(1)) or QUANTIZED_EXPERTS.match(m.group(1)))


def quantize_tensor(tensor: torch.Tensor, fmt: str, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A [N, K] weight or [E, N, K] experts tensor -> (payload, scale); experts one at a time,
    so a 1 GB expert tensor never has a float32 copy of the whole."""
    if tensor.dim() == 2:
        return quantize_weight(tensor, fmt, group_size)
    parts = [quantize_weight(tensor[e], fmt, group_size) for e in range(tensor.shape[0])]
    return torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts])


class _ShardWriter:
    """Collects tensors and writes a shard whenever `limit` bytes are reached."""

    def __init__(self, directory: Path, limit: int):
        self.directory, self.limit = directory, limit
        self.pending: dict[str, torch.Tensor] = {}
        self.pending_bytes = 0
        self.files: list[Path] = []
        self.weight_map: dict[str, str] = {}
        self.total = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        if self.pending and self.pending_bytes + size > self.limit:
            self.flush()
        self.pending[name] = tensor.contiguous()
        self.pending_bytes += size
        self.total += size

    def flush(self) -> None:
        if not self.pending:
            return
        path = self.directory / f"model-{len(self.files) + 1:05d}.safetensors.partial"
        save_file(self.pending, str(path), metadata={"format": "pt"})
        self.files.append(path)
        self.weight_map.update({name: path.name for name in self.pending})
        self.pending, self.pending_bytes = {}, 0

    def finish(self) -> list[str]:
        """Name the shards model-0000i-of-0000n (or model.safetensors alone) and write the index."""
        self.flush()
        count = len(self.files)
        renamed = {}
        for i, path in enumerate(self.files, start=1):
            final = "model.safetensors" if count == 1 else f"model-{i:05d}-of-{count:05d}.safetensors"
            path.rename(self.directory / final)
            renamed[path.name] = final
        weight_map = {name: renamed[file] for name, file in sorted(self.weight_map.items())}
        if count > 1:
            index = {"metadata": {"total_size": self.total}, "weight_map": weight_map}
            (self.directory / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
        return sorted(set(renamed.values()))


def quantize_checkpoint(
    src: str | Path,
    dst: str | Path,
    fmt: str,
    group_size: int = DEFAULT_GROUP_SIZE,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    progress: bool = True,
) -> QuantizeReport:
    """Write `src` quantized to `fmt` ("int8", "int4", "fp8") into the new directory `dst`."""
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    if fmt not in FORMATS:
        raise InputError(f"unknown quantization format {fmt!r}; expected one of {FORMATS}")
    if group_size < 2 or group_size % 2:
        raise InputError(f"the int4 group size must be an even number >= 2, got {group_size}")
    if not src.is_dir():
        raise ModelLoadError(f"model directory not found: {src}")
    family = detect_family(src)
    raw_config = _read_config_json(src, family)
    if raw_config.get("quantization_config") is not None:
        raise InputError(f"{src} is already quantized; quantize the original bf16 checkpoint")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise InputError(f"{dst} exists and is not an empty directory; choose a new output directory")
    if dst.resolve() == src.resolve():
        raise InputError("the output directory must differ from the source")
    shards = _find_shards(src)  # refuses pickle-only directories

    dst.mkdir(parents=True, exist_ok=True)
    report = QuantizeReport(fmt, dst)
    writer = _ShardWriter(dst, shard_bytes)
    try:
        _convert(shards, fmt, group_size, writer, report, progress, family)
        report.shards = writer.finish()
    except BaseException:
        for partial in dst.glob("*.partial"):
            partial.unlink()
        raise
    report.bytes_out = writer.total

    raw_config["quantization_config"] = {
        "quant_method": "dg_lsp",
        "format": fmt,
        "bits": {"int8": 8, "int4": 4, "fp8": "fp8"}[fmt],
        "group_size": group_size if fmt == "int4" else None,
        "scale": "per output channel" if fmt != "int4" else "per output channel and group of input columns",
        "kept_unquantized": KEPT_BY_FAMILY[family],
    }
    (dst / "config.json").write_text(json.dumps(raw_config, indent=2) + "\n", encoding="utf-8")
    _copy_side_files(src, dst)
    return report


def _read_config_json(src: Path, family: str) -> dict:
    path = src / "config.json"
    if not path.is_file():
        raise ModelLoadError(f"{src} has no config.json: is it a Hugging Face model directory?")
    raw = _read_json(path)
    # Refuse what the loader could not run before spending an hour on it.
    if family == "dream":
        from .dream_loader import read_dream_config, read_optional_tokenizer

        read_dream_config(src, *read_optional_tokenizer(src))
        return raw
    try:
        parse_config(raw)
    except (ConfigError, TypeError) as err:
        raise ModelLoadError(f"{path}: {err}") from None
    return raw


def _convert(shards: list[Path], fmt: str, group_size: int, writer: _ShardWriter, report: QuantizeReport,
             progress: bool, family: str = "diffusion_gemma") -> None:
    handles = []
    for shard in shards:
        try:
            handles.append(safe_open(str(shard), framework="pt", device="cpu"))
        except (SafetensorError, OSError) as err:
            raise ModelLoadError(f"corrupt or truncated safetensors file {shard}: {err}") from None
    keys = [(h, key) for h in handles for key in sorted(h.keys())]
    for handle, key in tqdm(keys, desc=f"quantizing to {fmt}", unit="tensor", disable=not progress):
        try:
            tensor = handle.get_tensor(key)  # one tensor in memory at a time
        except (SafetensorError, OSError) as err:
            raise ModelLoadError(f"cannot read tensor {key}: {err}") from None
        report.bytes_in += tensor.numel() * tensor.element_size()
        reason = _why_not(key, tensor, fmt, group_size, family)
        if reason is None:
            payload, scale = quantize_tensor(tensor, fmt, group_size)
            writer.add(key, payload)
            writer.add(key + SCALE_SUFFIX, scale)
            report.quantized.append(key)
        else:
            if reason:
                report.skipped.append(f"{key} ({reason})")
            writer.add(key, tensor)
            report.kept.append(key)
        del tensor


def _why_not(key: str, tensor: torch.Tensor, fmt: str, group_size: int, family: str) -> str | None:
    """None when `key` gets quantized; "" for a tensor that is never quantized; else the reason
    a quantizable weight is kept."""
    if not quantizable(key, family):
        return ""
    if not tensor.is_floating_point() or tensor.dim() not in (2, 3):
        return f"unexpected {tensor.dtype} {list(tensor.shape)}"
    if fmt == "int4" and int4_group_size(tensor.shape[-1], group_size) is None:
        return f"int4 needs an even input width, got {tensor.shape[-1]}"
    return None


def _copy_side_files(src: Path, dst: Path) -> None:
    """Tokenizer, generation config, chat template, model card...: every plain file that is not
    weights or the config (rewritten above)."""
    for path in src.iterdir():
        if not path.is_file() or path.name in ("config.json", INDEX_FILE):
            continue
        if path.suffix == ".safetensors" or path.suffix in PICKLE_SUFFIXES:
            continue
        shutil.copy2(path, dst / path.name)


@torch.no_grad()
def quantize_loaded_model(model: torch.nn.Module, fmt: str, group_size: int = DEFAULT_GROUP_SIZE) -> int:
    """Quantize a model already in memory (the server's `dgLsp.quantization` setting with a
    checkpoint stored unquantized): the same weights and layout as `quantize_checkpoint`
    writes, swapped in module by module. Returns how many weights were quantized."""
    if fmt not in FORMATS:
        raise InputError(f"unknown quantization format {fmt!r}; expected one of {', '.join(FORMATS)}")
    modules, scale_shapes, tensors = {}, {}, {}
    for name, weight in model.named_parameters():
        kind = "linear" if QUANTIZED_LINEAR.match(name) else "experts" if QUANTIZED_EXPERTS.match(name) else None
        if kind is None or (fmt == "int4" and int4_group_size(weight.shape[-1], group_size) is None):
            continue
        payload, scale = quantize_tensor(weight, fmt, group_size)
        modules[name.rsplit(".", 1)[0]] = kind
        tensors[name], tensors[name + SCALE_SUFFIX] = payload, scale
        scale_shapes[name + SCALE_SUFFIX] = tuple(scale.shape)
    device = next(model.parameters()).device
    swap_quantized_modules(model, modules, fmt, scale_shapes)
    for name, tensor in tensors.items():
        module_name, _, buffer = name.rpartition(".")
        getattr(model.get_submodule(module_name), buffer).copy_(tensor)
    for module_name in modules:
        model.get_submodule(module_name).to(device)
    return len(modules)
