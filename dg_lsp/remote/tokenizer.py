"""A remote model's tokenizer, from a local copy of its files (`dgLsp.remote.tokenizer`).

Only the tokenizer files are read (tokenizer.json, tokenizer_config.json, config.json,
generation_config.json): no weights, no torch. The prompt format is then decided by the
same detection the local engine uses (`dg_lsp.prompt.format`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from ..errors import ModelLoadError
from ..prompt.format import PromptFormat, prompt_format_for


def read_tokenizer(directory: Path) -> Tokenizer:
    path = directory / "tokenizer.json"
    if not path.is_file():
        raise ModelLoadError(f"dgLsp.remote.tokenizer: {directory} has no tokenizer.json")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:  # the tokenizers library raises plain Exceptions
        raise ModelLoadError(f"cannot read {path}: {err}") from None


def read_prompt_format(directory: Path) -> PromptFormat:
    tokenizer = read_tokenizer(directory)
    config = _json(directory / "config.json")
    config = config.get("text_config", config) if isinstance(config.get("text_config"), dict) else config
    generation = _json(directory / "generation_config.json")
    eos = generation.get("eos_token_id", config.get("eos_token_id"))
    eos_ids = [] if eos is None else [eos] if isinstance(eos, int) else [i for i in eos if isinstance(i, int)]
    bos = config.get("bos_token_id")
    return prompt_format_for(tokenizer, directory, eos_ids, bos if isinstance(bos, int) else None,
                             _json(directory / "tokenizer_config.json"))


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ModelLoadError(f"cannot read {path}: {err}") from None
    return data if isinstance(data, dict) else {}
