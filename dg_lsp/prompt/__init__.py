"""Prompts as token ids: the model directory's layout (`format`), memoized segment
tokenization (`tokens`), the one builder every caller uses (`builder`), and decoding
(`decode`)."""

from .builder import Prompt, PromptBuilder
from .format import PromptFormat, prompt_format_for, trained_context_tokens, trained_with_cross_file_context

__all__ = ["Prompt", "PromptBuilder", "PromptFormat", "prompt_format_for", "trained_context_tokens", "trained_with_cross_file_context"]
