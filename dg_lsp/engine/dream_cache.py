"""The model calls of Dream-family decoding, and what may be reused between them.

Attention is bidirectional over the whole sequence, so every key and value goes stale once
any token changes: the dual cache and the prompt reuse are approximations, switchable and
off by default, their cost measured (`benchmarks/dream_cache.py`,
tests/dream/test_decoding_cache.py); only the first-step memo is exact.

- `SpanForward` gives the shifted logits of a block of the gap. Without a cache each step is
  a forward over the whole sequence. With Fast-dLLM's dual cache the first step of a block
  runs the whole sequence and keeps the keys and values of every position outside the
  block's window (the prefix and the suffix); the other steps of that block run only the
  window, attending to those kept keys and values. `refresh_every` recomputes them every N
  steps as well (1: every step, which is exact).
- `FirstStepMemo` reuses across requests (keystrokes) the one thing that is exactly
  reusable: the first step's logits (and its dual cache) for the same starting sequence and
  window, e.g. an invoked request after an automatic one at the same place, or the
  candidates of one request.
- `reuse_prompt_kv` (off by default): the first step of a request whose prompt starts like
  the document's last one takes the keys and values of those shared positions from that
  request's first pass and runs only the rest. Not exact: each prefix position attended to the
  old suffix and gap (every layer after the first is stale), and a keystroke moves the suffix;
  what it changes is measured in the benchmark.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

LayerKV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values): [B, Hkv, T, D]
MIN_SHARED = 32  # `reuse_prompt_kv` reuses an earlier prompt's start only when it shares this many tokens


def kv_select(kv: LayerKV, positions: torch.Tensor) -> LayerKV:
    """The keys and values of `positions` (a 1-D index over the sequence axis)."""
    return [(k.index_select(2, positions), v.index_select(2, positions)) for k, v in kv]


def kv_expand(kv: LayerKV, batch: int) -> LayerKV:
    """A batch-1 cache read by `batch` rows (the candidates share the prompt)."""
    if kv[0][0].shape[0] == batch:
        return kv
    return [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in kv]


def kv_nbytes(kv: LayerKV | None) -> int:
    return 0 if kv is None else sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)


@dataclass
class FirstStep:
    """What the first forward of a request produced, for a later request that starts the same."""

    sequence: tuple[int, ...]
    window: tuple[int, int]
    logits: torch.Tensor  # [1, end - start, V] shifted logits of the window
    outside_kv: LayerKV | None  # the dual cache's keys and values of the positions outside the window
    whole_kv: LayerKV | None = None  # every position's keys and values (kept for `reuse_prompt_kv`)


class SpanForward:
    """Shifted logits for positions [start, end) of the sequence; see the module docstring."""

    def __init__(self, model, dual_cache: bool = False, refresh_every: int | None = None,
                 memo: FirstStepMemo | None = None, key: str = "", reuse_prompt_kv: bool = False):
        self.model = model
        self.dual_cache = dual_cache
        self.refresh_every = refresh_every
        self.memo = memo
        self.key = key
        self.reuse_prompt_kv = reuse_prompt_kv and memo is not None
        self.device = next(model.parameters()).device
        self.last_nfe = 0  # forward passes the last call ran (0 when it was answered from the memo)
        self.full_forwards = 0  # whole-sequence passes: what `tokens_encoded` counts the prompt in
        self.reused_positions = 0  # positions of those passes taken from an earlier request (approximate)
        self._outside: LayerKV | None = None
        self._window: tuple[int, int, int] | None = None  # (window start, end, sequence length)
        self._since_refresh = 0
        self._first = True

    def reset(self) -> None:
        """Forget the dual cache (a block boundary, or the sequence changed length)."""
        self._outside, self._window = None, None

    def __call__(self, ids: torch.Tensor, start: int, end: int) -> torch.Tensor:
        first, self._first = self._first, False
        if first and self.memo is not None and (hit := self.memo.get(self.key, ids, start, end)) is not None:
            self.last_nfe = 0
            self._keep(hit.outside_kv, start, end, ids.shape[1], ids.shape[0])
            return hit.logits.expand(ids.shape[0], -1, -1)
        self.last_nfe = 1
        window_start = max(0, start - 1)  # the shift: position i is predicted at i - 1
        reusable = (self._outside is not None and self._window == (window_start, end, ids.shape[1])
                    and (self.refresh_every is None or self._since_refresh < self.refresh_every))
        if reusable:
            self._since_refresh += 1
            positions = torch.arange(window_start, end, device=ids.device)[None].expand(ids.shape[0], -1)
            return self.model(ids[:, window_start:end], position_ids=positions, kv=self._outside,
                              logits_range=(start - window_start, end - window_start))
        self.full_forwards += 1
        shared, prefix_kv = (self.memo.shared_prefix(self.key, ids[0], window_start)
                             if first and self.reuse_prompt_kv else (0, None))
        keep_all = self.dual_cache or (first and self.reuse_prompt_kv)
        # Only the window's logits: over a long prompt the LM head would be most of a small model's pass.
        if prefix_kv is not None:  # approximate: the first `shared` positions' keys from an earlier prompt
            self.reused_positions += shared
            positions = torch.arange(shared, ids.shape[1], device=ids.device)[None].expand(ids.shape[0], -1)
            window_logits, kv = self.model(ids[:, shared:], position_ids=positions, kv=kv_expand(prefix_kv, ids.shape[0]),
                                           return_kv=True, logits_range=(start - shared, end - shared))
            kv = [(torch.cat([pk.expand(k.shape[0], -1, -1, -1), k], 2), torch.cat([pv.expand(v.shape[0], -1, -1, -1), v], 2))
                  for (pk, pv), (k, v) in zip(prefix_kv, kv)]
        elif keep_all:
            window_logits, kv = self.model(ids, return_kv=True, logits_range=(start, end))
        else:
            window_logits, kv = self.model(ids, logits_range=(start, end)), None
        if self.dual_cache:
            self._keep(kv_select(kv, _outside_positions(window_start, end, ids.shape[1], ids.device)),
                       start, end, ids.shape[1], ids.shape[0])
        if first and self.memo is not None and bool((ids == ids[:1]).all()):
            outside_kv = None if self._outside is None else [(k[:1], v[:1]) for k, v in self._outside]
            whole_kv = [(k[:1], v[:1]) for k, v in kv] if self.reuse_prompt_kv else None
            self.memo.put(self.key, FirstStep(tuple(ids[0].tolist()), (start, end), window_logits[:1].clone(),
                                              outside_kv, whole_kv))
        return window_logits

    def _keep(self, outside: LayerKV | None, start: int, end: int, length: int, batch: int) -> None:
        if not self.dual_cache or outside is None:
            return
        self._outside = kv_expand(outside, batch)
        self._window = (max(0, start - 1), end, length)
        self._since_refresh = 1


def _outside_positions(window_start: int, end: int, length: int, device) -> torch.Tensor:
    return torch.cat([torch.arange(0, window_start, device=device), torch.arange(end, length, device=device)])


class FirstStepMemo:
    """Per document (the prompt's cache key), the first step of its last request.

    `entries` and `tokens_encoded` are what `dg/status` reports for the engine's prompt cache:
    here, the documents remembered and the prompt tokens run through a whole-sequence pass."""

    def __init__(self, max_entries: int = 8):
        self.max_entries = max_entries
        self.entries: OrderedDict[str, FirstStep] = OrderedDict()
        self.tokens_encoded = 0
        self.hits = 0

    def get(self, key: str, ids: torch.Tensor, start: int, end: int) -> FirstStep | None:
        entry = self.entries.get(key)
        if entry is None or entry.window != (start, end) or len(entry.sequence) != ids.shape[1]:
            return None
        if not bool((ids == torch.tensor(entry.sequence, device=ids.device)).all()):
            return None
        self.entries.move_to_end(key)
        self.hits += 1
        return entry

    def shared_prefix(self, key: str, ids: torch.Tensor, limit: int) -> tuple[int, LayerKV | None]:
        """(n, keys and values of the first n positions) of this document's last whole pass, where
        n is how many leading tokens `ids` [L] shares with it (at most `limit`, at least
        MIN_SHARED; else (0, None))."""
        entry = self.entries.get(key)
        if entry is None or entry.whole_kv is None:
            return 0, None
        old = torch.tensor(entry.sequence[:limit], device=ids.device)
        same = old == ids[: old.shape[0]]
        n = int(same.long().cumprod(0).sum())
        if n < MIN_SHARED:
            return 0, None
        return n, [(k[:, :, :n], v[:, :, :n]) for k, v in entry.whole_kv]

    def put(self, key: str, entry: FirstStep) -> None:
        self.entries[key] = entry
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()

    def nbytes(self) -> int:
        return sum(e.logits.numel() * e.logits.element_size() + kv_nbytes(e.outside_kv) for e in self.entries.values())
