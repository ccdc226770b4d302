"""Prompts as token ids: the model directory's layout (`format`), memoized segment
tokenization (`tokens`), the one builder every caller uses (`builder`), decoding
(`decode`), and token healing at the cursor (`healing`)."""

from .builder import Prompt, PromptBuilder
from .format import (PromptFormat, heals_tokens, prompt_format_for, trained_context_tokens,
                     trained_with_cross_file_context)

__all__ = ["Prompt", "PromptBuilder", "PromptFormat", "heals_tokens", "prompt_format_for", "trained_context_tokens",
           "trained_with_cross_file_context"]
