"""Show only what the model is confident of.

Each generated token comes with its probability under the final denoising step
(`Generation.confidences`). A completion is cut before its first token below
`dgLsp.minConfidence`, at a token boundary, and then post-processed as usual: a guess the model
is not sure of is never shown, and often nothing is, which is better than a wrong suggestion.
An invoked request (the user asked) also offers the whole candidates after the confident ones.
"""

from __future__ import annotations

from collections.abc import Sequence


def confident_prefix(tokens: Sequence[int], confidences: Sequence[float], threshold: float) -> list[int]:
    """The longest prefix of `tokens` whose every token has confidence >= `threshold`."""
    end = next((i for i, c in enumerate(confidences) if c < threshold), len(tokens))
    return list(tokens[:end])
