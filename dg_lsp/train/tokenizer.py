"""The default model's tokenizer: byte-level BPE trained on the corpus.

- Lossless: no normalizer, every byte is in the initial alphabet, and the ByteLevel decoder
  undoes the byte-to-character mapping, so ``decode(encode(text)) == text`` for any text
  (CRLF, tabs, long whitespace runs, emoji and CJK included) that does not spell a special
  token.
- Special tokens first, so their ids are fixed by ``SPECIAL_TOKENS``: pad 0, eos 1, bos 2 (the
  DiffusionGemma config defaults), then the FIM markers and the file separator. No
  post-processor adds tokens: prompt building adds BOS itself.
- Pre-tokenization is tuned for code: a newline takes the next line's indentation with it
  (``"\\n        "`` is one piece, so indentation costs one token per line and a prompt that
  ends after the indentation splits exactly as training text did), words take one leading
  space or punctuation character, digits go in groups of up to three, and other whitespace
  runs stay whole.

Special tokens are matched in text too (the ``tokenizers`` default), so a literal
``<|fim_prefix|>`` in a document becomes the marker. Code that encodes raw documents and
builds markers from ids can turn this off with ``tokenizer.encode_special_tokens = True``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from .corpus import CorpusManifest, iter_documents

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_separator|>"]

# Pieces, tried in order at each position (every character lands in exactly one piece):
#   a word with at most one leading non-letter, non-digit, non-newline char (" foo", "_bar", ".append")
#   1-3 digits
#   punctuation with at most one leading space (" ==", "):", "/**")
#   trailing whitespace, newlines, then the next line's indentation ("  \n\n    ")
#   a whitespace run, leaving its last space to the word after it
#   whatever whitespace is left (at the end of the text)
SPLIT_PATTERN = (
    r"[^\r\n\p{L}\p{N}]?\p{L}+"
    r"|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+"
    r"|\s*[\r\n][ \t]*"
    r"|\s+(?!\S)"
    r"|\s+"
)


def new_tokenizer() -> Tokenizer:
    """An untrained tokenizer with the pipeline above (empty vocabulary)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_tokenizer(
    documents: Iterable[str],
    vocab_size: int = 8192,
    out_path: str | Path | None = None,
    progress: bool = True,
) -> Tokenizer:
    """Train on an iterable of texts; save to ``out_path`` (a tokenizer.json) when given."""
    minimum = len(SPECIAL_TOKENS) + len(pre_tokenizers.ByteLevel.alphabet())
    if vocab_size < minimum:
        raise ValueError(f"vocab_size must be at least {minimum} (special tokens and the 256 bytes)")
    tokenizer = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=progress,
    )
    tokenizer.train_from_iterator(documents, trainer=trainer)
    for i, token in enumerate(SPECIAL_TOKENS):  # the trainer's contract, checked: ids come from this order
        if tokenizer.token_to_id(token) != i:
            raise RuntimeError(f"special token {token} got id {tokenizer.token_to_id(token)}, expected {i}")
    if out_path is not None:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        tokenizer.save(str(out_path))
    return tokenizer


def sample_texts(corpus_dir: str | Path, max_bytes: int, seed: int = 0, split: str = "train") -> Iterator[str]:
    """Texts of a corpus split, each kept with the same probability so that about ``max_bytes``
    (UTF-8) are drawn from the whole split rather than from its first sources; never more."""
    corpus_dir = Path(corpus_dir)
    total = CorpusManifest.load(corpus_dir).totals[split]["bytes"]
    keep = 1.0 if total <= max_bytes else max_bytes / total
    rng = random.Random(seed)
    taken = 0
    for doc in iter_documents(corpus_dir / f"{split}.jsonl"):
        if rng.random() >= keep:
            continue
        size = len(doc["text"].encode("utf-8"))
        if taken + size > max_bytes:
            continue
        taken += size
        yield doc["text"]


def chars_per_token(tokenizer: Tokenizer, texts: Iterable[str], batch: int = 256) -> tuple[float, int, int]:
    """(characters per token, characters, tokens) over ``texts``: the compression."""
    chars = tokens = 0
    texts = iter(texts)
    while chunk := list(itertools.islice(texts, batch)):
        chars += sum(map(len, chunk))
        tokens += sum(len(e.ids) for e in tokenizer.encode_batch_fast(chunk, add_special_tokens=False))
    return (chars / tokens if tokens else 0.0), chars, tokens


def heldout_compression(tokenizer: Tokenizer, corpus_dir: str | Path,
                        max_chars: int | None = None) -> dict[str, dict[str, float]]:
    """Characters per token on the held-out split, per language (at most ``max_chars`` of each)."""
    texts: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for doc in iter_documents(Path(corpus_dir) / "heldout.jsonl"):
        language = doc["language"]
        if max_chars is None or sizes.get(language, 0) < max_chars:
            texts.setdefault(language, []).append(doc["text"])
            sizes[language] = sizes.get(language, 0) + len(doc["text"])
    out = {}
    for language, docs in sorted(texts.items()):
        ratio, chars, tokens = chars_per_token(tokenizer, docs)
        out[language] = {"chars_per_token": round(ratio, 3), "chars": chars, "tokens": tokens}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dg_lsp.train.tokenizer", description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus_dir", type=Path, help="a folder written by python -m dg_lsp.train.corpus")
    parser.add_argument("out_path", type=Path, help="the tokenizer.json to write")
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--max-bytes", type=int, default=64_000_000, help="most training bytes, sampled from the whole train split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    texts = sample_texts(args.corpus_dir, args.max_bytes, args.seed)
    tokenizer = train_tokenizer(texts, args.vocab_size, args.out_path, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    compression = heldout_compression(tokenizer, args.corpus_dir)
    print(f"vocabulary {tokenizer.get_vocab_size()} tokens, trained in {seconds:.1f} s -> {args.out_path}")
    for language, c in compression.items():
        print(f"held-out {language}: {c['chars_per_token']:.2f} characters per token ({c['chars']} chars)")
    print(json.dumps({"vocab_size": tokenizer.get_vocab_size(), "seconds": round(seconds, 1),
                      "max_bytes": args.max_bytes, "heldout": compression}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
