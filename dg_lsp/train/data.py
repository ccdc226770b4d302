"""Fill-in-the-middle training examples, shaped for both objectives at once.

Each example is a window of code split into prefix / middle / suffix. The prompt is in
SPM order, `<bos> <pre> <suf> suffix <mid> prefix`, the order the engine uses for our
model (typing at the cursor only extends it), and always exactly `prompt_len` tokens.
The target is the canvas: the middle, then `<eos>`, then `<pad>` up to the canvas length
(or only the first `canvas_len` tokens of a longer middle, with no `<eos>`: the next canvas
continues it). The causal encoder reads `prompt + target` (next-token loss); the decoder
denoises the target after the prompt's KV (denoising loss).

Middles are whole lines, the rest of a line, or random spans, so single-line and block
completions are both practised.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

import torch

from .line_holes import LineHoleCutter
from .tokenizer import SPECIAL_TOKENS

PAD, EOS, BOS, FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE, FILE_SEPARATOR = range(len(SPECIAL_TOKENS))
PROMPT_SPECIALS = 4  # bos, pre, suf, mid


@dataclass
class Batch:
    prompt: torch.Tensor  # [B, P]
    target: torch.Tensor  # [B, C]: middle, eos, pads


def cap_package_bytes(documents: list[dict], max_bytes: int, rng: random.Random) -> list[dict]:
    """At most `max_bytes` (at least 1) of text per package (the corpus's `package` field), from
    a random subset of its files; at least one file of each package is kept, however large. The
    result stays in corpus order."""
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
    by_package: dict[str, list[int]] = defaultdict(list)
    for index, document in enumerate(documents):
        by_package[document["package"]].append(index)
    kept: set[int] = set()
    for indices in by_package.values():
        rng.shuffle(indices)
        total = 0
        for index in indices:
            if total >= max_bytes:
                break
            kept.add(index)
            total += len(documents[index]["text"].encode("utf-8"))
    return [document for index, document in enumerate(documents) if index in kept]


class TokenStream:
    """Documents tokenized and joined with `<|file_separator|>`, served as random windows."""

    def __init__(self, token_ids: list[int]):
        self.ids = torch.tensor(token_ids, dtype=torch.long)

    @classmethod
    def from_texts(cls, texts: Iterable[str], tokenizer, max_tokens: int | None = None,
                   chunk: int = 256) -> TokenStream:
        """Tokenize (in parallel batches) until `max_tokens`. Special-token spellings inside the
        code (transformers' sources contain "<eos>" as text) stay text, not control tokens."""
        tokenizer.encode_special_tokens = True  # not saved in tokenizer.json: the engine is unaffected
        ids: list[int] = []
        texts = iter(texts)
        while max_tokens is None or len(ids) < max_tokens:
            batch = [t for _, t in zip(range(chunk), texts)]
            if not batch:
                break
            for encoding in tokenizer.encode_batch(batch, add_special_tokens=False):
                ids.extend(encoding.ids)
                ids.append(FILE_SEPARATOR)
        return cls(ids[:max_tokens] if max_tokens else ids)

    def window(self, length: int, rng: random.Random) -> torch.Tensor:
        start = rng.randrange(0, max(1, len(self.ids) - length))
        return self.ids[start : start + length]


class WindowSampler:
    """Contiguous windows of the stream for plain next-token pretraining (every position a target)."""

    def __init__(self, stream: TokenStream, length: int, seed: int = 0):
        self.stream = stream
        self.length = length
        self.rng = random.Random(seed)

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        while True:
            windows = [self.stream.window(self.length, self.rng) for _ in range(batch_size)]
            yield torch.stack([torch.cat([w, torch.full((self.length - len(w),), PAD)]) for w in windows])


class FimSampler:
    def __init__(self, stream: TokenStream, newline_ids: Collection[int], prompt_len: int, canvas_lens=(16, 32, 64),
                 seed: int = 0, long_middle_share: float = 0.15, line_holes: LineHoleCutter | None = None,
                 line_hole_share: float = 0.0):
        self.stream = stream
        # This share of examples is a whole line cut as the server cuts it (`line_holes`).
        self.line_holes = line_holes
        self.line_hole_share = line_hole_share if line_holes is not None else 0.0
        self.newline_ids = newline_ids  # tokens that contain a line break: where lines end
        self.prompt_len = prompt_len
        self.canvas_lens = tuple(canvas_lens)
        self.rng = random.Random(seed)
        self.long_middle_share = long_middle_share

    def batches(self, batch_size: int) -> Iterator[Batch]:
        while True:
            canvas = self.rng.choice(self.canvas_lens)  # one canvas length per batch: tensors stay rectangular
            examples = [self.example(canvas) for _ in range(batch_size)]
            yield Batch(torch.stack([e[0] for e in examples]), torch.stack([e[1] for e in examples]))

    def example(self, canvas: int) -> tuple[torch.Tensor, torch.Tensor]:
        context = self.prompt_len - PROMPT_SPECIALS
        if self.line_hole_share and self.rng.random() < self.line_hole_share:
            example = self._line_hole_example(canvas, context)
            if example is not None:
                return example
        long_middle = self.rng.random() < self.long_middle_share
        span = canvas + self.rng.randrange(1, canvas) if long_middle else self.rng.randrange(1, canvas)
        window = self.stream.window(context + span, self.rng)
        start = self._middle_start(window, span, context)
        middle_len = self._middle_length(window, start, span)
        prefix, middle = window[:start], window[start : start + middle_len]
        suffix = window[start + middle_len : start + middle_len + (context - len(prefix))]
        # The window leaves exactly enough suffix; near the stream's end, pad at the very start.
        return self._assemble(prefix, middle, suffix, canvas)

    def _line_hole_example(self, canvas: int, context: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A whole line as the middle, cut from decoded text (`LineHoleCutter`); the suffix gets
        at most a quarter of the prompt, as the server gives it."""
        cut = self.line_holes.cut(self.stream.window(context + canvas, self.rng), self.rng)
        if cut is None:
            return None
        prefix, middle, suffix = cut
        prefix = prefix[-(context - min(len(suffix), context // 4)):]
        suffix = suffix[: context - len(prefix)]
        return self._assemble(*(torch.tensor(part, dtype=torch.long) for part in (prefix, middle, suffix)), canvas)

    def _assemble(self, prefix: torch.Tensor, middle: torch.Tensor, suffix: torch.Tensor,
                  canvas: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The SPM prompt, padded at the very start to `prompt_len`, and the canvas target."""
        prompt = torch.cat([torch.tensor([BOS, FIM_PREFIX, FIM_SUFFIX]), suffix, torch.tensor([FIM_MIDDLE]), prefix])
        prompt = torch.cat([torch.full((self.prompt_len - len(prompt),), PAD, dtype=torch.long), prompt])
        target = middle[:canvas]
        if len(middle) < canvas:
            target = torch.cat([middle, torch.tensor([EOS]), torch.full((canvas - len(middle) - 1,), PAD)])
        return prompt, target

    def _middle_start(self, window: torch.Tensor, span: int, context: int) -> int:
        """Somewhere leaving room for the middle; half the time at the start of a line."""
        low, high = max(1, context // 8), len(window) - span
        start = self.rng.randrange(low, max(low + 1, high))
        if self.rng.random() < 0.5:
            for i in range(start, max(low, start - 200), -1):
                if int(window[i - 1]) in self.newline_ids:
                    return i
        return start

    def _middle_length(self, window: torch.Tensor, start: int, span: int) -> int:
        """Half the time the middle ends at a line end (the rest of a line, or whole lines)."""
        if self.rng.random() < 0.5:
            for i in range(start, min(len(window), start + span)):
                if int(window[i]) in self.newline_ids and self.rng.random() < 0.7:
                    return i - start + 1
        return min(span, len(window) - start)
