"""Prompt templates and stop strings for the model families a remote server may serve.

A server behind `kind = "openai"` (vLLM) takes a finished prompt: dg-lsp lays out the fill-in-the-middle
markers itself, in the spelling the family was trained with (each model card's published template):

- qwen (Qwen2.5-Coder): `<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>`
- starcoder (StarCoder, StarCoder2, SantaCoder): `<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>`
- codellama: `<PRE> {prefix} <SUF>{suffix} <MID>` (the spaces are part of it)
- deepseek (DeepSeek-Coder): `<｜fim▁begin｜>{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>` (full-width bars)
- diffusiongemma: no FIM markers; the instruction prompt of dg-lsp's builder in the Gemma 4 chat turn
  format, with the prefix as the start of the model's reply.

Snippets from other files go first, before the prefix marker (as in dg-lsp's own prompts). The stop
strings end a completion at the family's end-of-text or at a marker the model starts to repeat; the
server is asked to stop there, and dg-lsp cuts there too in case it does not.

`from_tokenizer` derives the same from a local copy of the model's tokenizer files (`dgLsp.remote.tokenizer`),
through the local engine's own format detection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError
from ..prompt.builder import INSTRUCTION


@dataclass(frozen=True)
class Template:
    name: str
    kind: str  # "fim" or "instruction"
    markers: tuple[str, str, str] = ("", "", "")  # prefix, suffix, middle (FIM)
    order: str = "psm"  # psm: prefix first; spm: suffix first (a tokenizer directory's dg_lsp.json)
    stops: tuple[str, ...] = ()
    chat_template: str | None = None  # instruction prompts from a tokenizer directory
    bos_token: str = ""

    def render(self, prefix: str, suffix: str, context: str, selection: str | None = None) -> str:
        """The whole prompt text for `/v1/completions`; `selection` is the code a rewrite replaces."""
        if self.kind == "instruction":
            return self._instruction(prefix, suffix, context, selection)
        pre, suf, mid = self.markers
        if self.order == "spm":
            return f"{context}{pre}{suf}{suffix}{mid}{prefix}"
        return f"{context}{pre}{prefix}{suf}{suffix}{mid}"

    def _instruction(self, prefix: str, suffix: str, context: str, selection: str | None) -> str:
        message = f"Code from other open files:\n{context}\n\n" if context else ""
        message += f"The code after the gap:\n{suffix}\n\n"
        if selection is not None:
            message += f"The code in the gap now, to be rewritten:\n{selection}\n\n"
        message += INSTRUCTION
        if self.chat_template:
            from ..prompt.format import render_chat

            return render_chat(self.chat_template, message, self.bos_token) + prefix
        # Gemma 4's turn format (ai.google.dev "Gemma 4 prompt formatting"); the server adds <bos>.
        return f"<|turn>user\n{message}<turn|>\n<|turn>model\n{prefix}"


_QWEN_STOPS = ("<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
               "<|repo_name|>", "<|file_sep|>", "<|im_start|>", "<|im_end|>")

FAMILIES: dict[str, Template] = {
    "qwen": Template("qwen", "fim", ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"), stops=_QWEN_STOPS),
    "starcoder": Template("starcoder", "fim", ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
                          stops=("<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>",
                                 "<repo_name>")),
    "codellama": Template("codellama", "fim", ("<PRE> ", " <SUF>", " <MID>"),
                          stops=("<EOT>", "<PRE>", "<SUF>", "<MID>", "</s>")),
    "deepseek": Template("deepseek", "fim", ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
                         stops=("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "<｜end▁of▁sentence｜>",
                                "<|EOT|>")),
    "diffusiongemma": Template("diffusiongemma", "instruction",
                               stops=("<turn|>", "<|turn>", "<eos>", "<end_of_turn>")),
}


def from_tokenizer(directory: Path) -> Template:
    """The template a local model directory's tokenizer implies (FIM markers or chat template, and
    its stop tokens as text)."""
    from .tokenizer import read_prompt_format

    fmt = read_prompt_format(directory)
    tokenizer = fmt.tokenizer
    stops = tuple(t for i in fmt.stop_token_ids if (t := tokenizer.id_to_token(i)))
    if fmt.kind == "fim":
        markers = tuple(tokenizer.id_to_token(i) for i in fmt.fim_ids)
        return Template(f"tokenizer:{directory.name}", "fim", markers, fmt.fim_order, stops)
    if not stops:
        raise ModelLoadError(f"{directory}: its tokenizer has neither FIM tokens nor stop tokens to end a completion")
    return Template(f"tokenizer:{directory.name}", "instruction", stops=stops, chat_template=fmt.chat_template,
                    bos_token="")  # the server adds its own BOS: a second one in the text would be doubled
