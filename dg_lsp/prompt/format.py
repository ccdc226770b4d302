"""Which prompt layout a model directory supports (the builder then lays prompts out).

- If the tokenizer has fill-in-the-middle tokens (one of the known conventions), the prompt
  is FIM: PSM order `<pre> prefix <suf> suffix <mid>` by default, or SPM order
  `<pre> <suf> suffix <mid> prefix` when the directory's `dg_lsp.json` says
  `{"fim_order": "spm"}`.
- `dg_lsp.json` may also say `{"context_tokens": N}`: the longest prompt the model was
  trained on. Its rotary positions beyond that were never seen, so the engine keeps prompts
  within it (see `trained_context_tokens`).
- `{"cross_file_context": false}`: the model was trained without snippets of other files;
  `{"token_healing": false}`: the engine continues the prompt's last token instead of
  rewriting it (`healing`; on unless it says false).
- Otherwise the prompt is an instruction, rendered with the model's chat template when it
  has one (in a sandboxed Jinja environment: the template is data, never trusted code).

`builder.PromptBuilder` turns either into token ids.

No token id is written here: every id comes from the tokenizer or the config.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from tokenizers import Tokenizer

from ..errors import ModelLoadError

# (prefix, suffix, middle) markers, as spelled by the model families that use them.
FIM_CONVENTIONS = (
    ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),  # CodeGemma, Qwen2.5-Coder, dg-lsp's own model
    ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),  # StarCoder, SantaCoder
    ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),  # DeepSeek-Coder (full-width bars, U+FF5C)
)
# Tokens that end a completion when the vocabulary has them (beside the config's EOS ids).
STOP_TOKENS = (
    "<|file_separator|>", "<|endoftext|>", "<|fim_pad|>", "<file_sep>", "<|eot_id|>",
    "<end_of_turn>", "<turn|>", "<|im_end|>", "<eos>",
) + tuple(marker for convention in FIM_CONVENTIONS for marker in convention)


@dataclass
class PromptFormat:
    tokenizer: Tokenizer
    kind: str  # "fim" or "instruction"
    stop_token_ids: tuple[int, ...]
    bos_id: int | None = None
    fim_ids: tuple[int, int, int] | None = None  # prefix, suffix, middle
    fim_order: str = "psm"
    chat_template: str | None = None
    bos_token: str = ""


def prompt_format_for(
    tokenizer: Tokenizer,
    directory: Path,
    eos_token_ids: list[int],
    bos_token_id: int | None,
    tokenizer_config: dict[str, Any],
) -> PromptFormat:
    """Pick the prompt format a model directory supports."""
    options = _read_options(directory)
    stops = {i for i in eos_token_ids}
    stops |= {i for token in STOP_TOKENS if (i := tokenizer.token_to_id(token)) is not None}
    add_bos = tokenizer_config.get("add_bos_token", True)
    bos_id = bos_token_id if add_bos and bos_token_id is not None and bos_token_id < tokenizer.get_vocab_size() else None
    for convention in FIM_CONVENTIONS:
        ids = tuple(tokenizer.token_to_id(t) for t in convention)
        if None not in ids:
            order = options.get("fim_order", "psm")
            if order not in ("psm", "spm"):
                raise ModelLoadError(f"{directory / 'dg_lsp.json'}: fim_order must be 'psm' or 'spm', not {order!r}")
            return PromptFormat(tokenizer, "fim", tuple(sorted(stops)), bos_id, ids, order)
    template = _chat_template(directory, tokenizer_config)
    bos_token = tokenizer_config.get("bos_token") or ""
    if isinstance(bos_token, dict):
        bos_token = bos_token.get("content", "")
    return PromptFormat(tokenizer, "instruction", tuple(sorted(stops)), bos_id, chat_template=template, bos_token=bos_token)


def trained_context_tokens(directory: Path) -> int | None:
    """The prompt length the model was trained on (`dg_lsp.json`), or None when not recorded."""
    value = _read_options(directory).get("context_tokens")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 16:
        raise ModelLoadError(f"{directory / 'dg_lsp.json'}: context_tokens must be an integer of at least 16, "
                             f"not {value!r}")
    return value


def trained_with_cross_file_context(directory: Path) -> bool:
    """Whether the model has seen snippets of other files before its FIM prompt (`dg_lsp.json`
    `cross_file_context`; true unless it says false). A model trained without them predicts
    worse with them: the default model's shown completions were right 53% of the time with
    snippets of three open files in its prompt against 64% without (benchmarks/confidence.py)."""
    value = _read_options(directory).get("cross_file_context", True)
    if not isinstance(value, bool):
        raise ModelLoadError(f"{directory / 'dg_lsp.json'}: cross_file_context must be true or false, not {value!r}")
    return value


def heals_tokens(directory: Path) -> bool:
    """Whether the engine may heal the prompt's last token (`dg_lsp.json` `token_healing`; true
    unless it says false): a model whose tokenizer cuts differently, or a test's fake model,
    can turn it off."""
    value = _read_options(directory).get("token_healing", True)
    if not isinstance(value, bool):
        raise ModelLoadError(f"{directory / 'dg_lsp.json'}: token_healing must be true or false, not {value!r}")
    return value


def _read_options(directory: Path) -> dict[str, Any]:
    path = directory / "dg_lsp.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot read {path}: {err}") from None
    return data if isinstance(data, dict) else {}


def _chat_template(directory: Path, tokenizer_config: dict[str, Any]) -> str | None:
    path = directory / "chat_template.jinja"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    template = tokenizer_config.get("chat_template")
    return template if isinstance(template, str) else None


def render_chat(template: str, user_text: str, bos_token: str) -> str:
    messages = [{"role": "user", "content": user_text}]
    try:
        return _compiled(template).render(messages=messages, add_generation_prompt=True, bos_token=bos_token)
    except SecurityError as err:  # the template came with the model directory: data, never trusted code
        raise ModelLoadError(f"the model's chat template was refused by the sandbox: {err}") from None


@functools.lru_cache(maxsize=8)
def _compiled(template: str):
    """A template is compiled once, not on every request that renders it."""
    return ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(template)
