"""Show only what the model is confident of.

Each generated token comes with its probability (`Generation.confidences`: for the local
engine the causal encoder's, read left to right, see `dg_lsp.engine.verify`; for a remote
server its logprobs). Their product over a prefix is the model's probability that the prefix
is right, so a completion is cut where that product falls below `dgLsp.minConfidence`, at a
token boundary, and then post-processed as usual: a guess the model is not sure of is never
shown, and often nothing is, which is better than a wrong suggestion. An invoked request (the
user asked) also offers the whole candidates after the confident ones.

A trusted prompt-lookup draft (`dg_lsp.context.lookup`: the continuation of a match of 48 or
more characters in the open documents) is evidence of its own, if weaker than the gate's:
measured on held-out line holes (benchmarks/confidence.py) it is the line's true rest 46% of
the time on the default 600 holes and 27% on 1,623 others (two holes a file, another seed;
records confidence-cpu-20261202-070107 and -055828). It stays because it brings most of the
right characters per request. So the first candidate shows the draft when the model's
confident prefix is shorter; the model still writes the rest of the canvas, seeded with it.

The threshold depends on where the cursor is (`threshold_at`): `minConfidence` (0.2) at a
line's start, `minConfidenceInLine` (0.1) inside a line's code, each the smallest whose shown
completions are right at least 60% of the time on two samples of held-out holes of its kind.
An invoked request has its own, lower gate, `minConfidenceInvoked` (0.1): the user asked, so
the first offered completion goes on further, and is still cut where the model doubts the rest
(a small model's tail after a right start is mostly wrong).
"""

from __future__ import annotations

from collections.abc import Sequence

from .settings import Settings


def threshold_at(settings: Settings, text: str, offset: int, invoked: bool = False) -> float:
    """`minConfidenceInLine` when the cursor is inside a line's code (something but blanks
    before it on its line), `minConfidence` at a line's start. The two are calibrated apart:
    inside a line the prompt's last token is healed and the model has the line's start. An
    invoked request: `minConfidenceInvoked`, unless that position's gate is lower still."""
    line_start = text.rfind("\n", 0, offset) + 1
    inside = text[line_start:offset].strip() != ""
    threshold = settings.minConfidenceInLine if inside else settings.minConfidence
    return min(threshold, settings.minConfidenceInvoked) if invoked else threshold


def confident_prefix(tokens: Sequence[int], confidences: Sequence[float], threshold: float) -> list[int]:
    """The longest prefix of `tokens` whose probability (the product of its tokens'
    confidences) is at least `threshold`."""
    probability, end = 1.0, 0
    for confidence in confidences[: len(tokens)]:
        probability *= confidence
        if probability < threshold:
            break
        end += 1
    return list(tokens[:end])

