"""Exact match on line holes cut from held-out code.

Documents are the training corpus's records, `{"text", "language", "path", ...}`, one JSON
object per line (`heldout.jsonl` as `dg_lsp.train.corpus` writes it; any such file will do).

A hole is one non-trivial line of a document: stripped, 8 to 120 characters long, not blank
and not a comment. The hole is the line's content after its indentation; the prefix is
everything before it (the indentation included), the suffix the line break and everything
after, each trimmed to about `prefix_chars` / `suffix_chars` characters at line boundaries.
Choices are deterministic: each document gets its own `random.Random` seeded with the seed,
its position and its path (string seeds hash the same in every process).

A completion matches exactly when `completion.strip() == hole.strip()`; the edit similarity
is difflib's `SequenceMatcher.ratio()` of the two stripped strings (1.0 for a match).
"""

from __future__ import annotations

import difflib
import json
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

MIN_LINE_CHARS, MAX_LINE_CHARS = 8, 120
# Line-comment and block-comment openers, by corpus language name (lower case).
COMMENT_PREFIXES: dict[str, tuple[str, ...]] = {
    "python": ("#",),
    "lua": ("--",),
    "javascript": ("//", "/*", "*"),
    "typescript": ("//", "/*", "*"),
    "rust": ("//", "/*", "*"),
    "go": ("//", "/*", "*"),
}
GENERIC_COMMENT_PREFIXES = ("#", "//", "/*", "*", "--", "<!--", ";")


@dataclass(frozen=True)
class Hole:
    path: str
    language: str
    line: int  # 0-based line number of the hole in the document
    prefix: str
    hole: str  # the expected middle
    suffix: str
    start: int  # offset in the document's text where `prefix` starts
    end: int  # offset where `suffix` ends: prefix + hole + suffix == text[start:end]


@dataclass
class HoleOutcome:
    path: str
    line: int
    expected: str
    completion: str
    exact: bool
    similarity: float


@dataclass
class HeldoutResults:
    outcomes: list[HoleOutcome] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.outcomes)

    @property
    def exact_match(self) -> float:
        return sum(o.exact for o in self.outcomes) / self.n if self.outcomes else float("nan")

    @property
    def edit_similarity(self) -> float:
        return sum(o.similarity for o in self.outcomes) / self.n if self.outcomes else float("nan")


def read_documents(path: str | Path) -> Iterator[dict]:
    """Records of a corpus JSON-lines file; those without a string "text" are skipped."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            if isinstance(record, dict) and isinstance(record.get("text"), str):
                yield record


def is_candidate(line: str, language: str = "") -> bool:
    stripped = line.strip()
    if not MIN_LINE_CHARS <= len(stripped) <= MAX_LINE_CHARS:
        return False
    return not stripped.startswith(COMMENT_PREFIXES.get(language.lower(), GENERIC_COMMENT_PREFIXES))


def cut_hole(text: str, line_no: int, prefix_chars: int = 2000, suffix_chars: int = 1000,
             path: str = "", language: str = "", cursor: int = 0) -> Hole:
    """The hole at line `line_no` (0-based; lines are split at "\n") of `text`: its code, from
    `cursor` characters after the indentation (0: all of it) to its end."""
    lines = text.split("\n")
    line_start = sum(len(line) + 1 for line in lines[:line_no])
    body = lines[line_no].rstrip("\r")
    indent = len(body) - len(body.lstrip())
    hole_start = line_start + indent + cursor
    hole_end = line_start + len(body.rstrip())  # trailing blanks belong to the suffix
    start = _trimmed_start(text, hole_start - indent, prefix_chars)
    end = _trimmed_end(text, line_start + len(body), suffix_chars)
    return Hole(path, language, line_no, text[start:hole_start], text[hole_start:hole_end], text[hole_end:end], start, end)


def cut_holes(
    documents: Iterable[dict],
    seed: int = 0,
    per_document: int = 1,
    prefix_chars: int = 2000,
    suffix_chars: int = 1000,
    inside: bool = False,
) -> list[Hole]:
    """Up to `per_document` holes per document (lines chosen at random among the candidates,
    in document order), in document order. `inside`: each hole starts at a random character
    inside its line's code rather than after the indentation, as while typing (often in the
    middle of a word)."""
    holes = []
    for index, doc in enumerate(documents):
        text, language, path = doc["text"], str(doc.get("language", "")), str(doc.get("path", ""))
        candidates = [i for i, line in enumerate(text.split("\n")) if is_candidate(line, language)]
        if not candidates:
            continue
        rng = random.Random(f"{seed}\x00{index}\x00{path}")
        lines = text.split("\n")
        for line_no in sorted(rng.sample(candidates, min(per_document, len(candidates)))):
            code = lines[line_no].strip()
            cursor = rng.randrange(1, len(code)) if inside else 0
            holes.append(cut_hole(text, line_no, prefix_chars, suffix_chars, path, language, cursor))
    return holes


def score(expected: str, completion: str) -> tuple[bool, float]:
    a, b = completion.strip(), expected.strip()
    return a == b, difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def score_all(holes: Sequence[Hole], completions: Sequence[str]) -> HeldoutResults:
    if len(completions) != len(holes):
        raise ValueError(f"{len(holes)} holes but {len(completions)} completions")
    results = HeldoutResults()
    for hole, completion in zip(holes, completions):
        exact, similarity = score(hole.hole, completion)
        results.outcomes.append(HoleOutcome(hole.path, hole.line, hole.hole, completion, exact, similarity))
    return results


def evaluate(holes: Sequence[Hole], complete_fn: Callable[[str, str], str], progress: bool = True,
             desc: str = "held-out") -> HeldoutResults:
    """One completion per hole from `complete_fn(prefix, suffix)`, scored."""
    completions = [complete_fn(hole.prefix, hole.suffix)
                   for hole in tqdm(holes, desc=desc, unit="hole", disable=not progress)]
    return score_all(holes, completions)


def _trimmed_start(text: str, line_start: int, budget: int) -> int:
    """Where a prefix of about `budget` characters ending at `line_start` begins: at a line start."""
    start = max(0, line_start - budget)
    if start == 0:
        return 0
    newline = text.find("\n", start - 1, line_start)  # start - 1: `start` may already begin a line
    return newline + 1 if newline != -1 else line_start


def _trimmed_end(text: str, line_end: int, budget: int) -> int:
    """Where a suffix of about `budget` characters from `line_end` (the hole line's break) ends:
    after a line break."""
    end = min(len(text), line_end + budget)
    if end == len(text):
        return end
    newline = text.rfind("\n", line_end, end)
    return newline + 1 if newline != -1 else end
