"""The denoising step's decoder forward, captured once in a CUDA graph and replayed per step.

At batch 1 a decoder forward of the 26B-A4B geometry is ~1,000 small kernel launches; replaying
a graph removes their CPU cost. `GraphedDenoiser` wraps a model: its `denoise(canvas, cache,
self_cond)` has the model's signature, and every other attribute is the model's, so the sampler
takes it in place of the model unchanged.

What a graph bakes in, and how that stays correct:

- Shapes and addresses. The canvas and the self-conditioning logits are copied into static
  input buffers; the logits come out in a static output buffer (valid until the next call:
  the sampler divides them by the temperature at once, which copies).
- The KV cache. The decoder reads each layer's cached keys/values as a slice [start, length)
  of the cache's storage, and the positions of the canvas start at `cache.length`: both are
  fixed in a graph. So a graph is keyed on the cache's identity, its storage addresses and its
  length (plus batch, canvas length and whether self-conditioning is given) and is captured
  again when any of them changes: once per canvas, since all denoising steps of a canvas
  share one cache state. The first step (no self-conditioning yet) runs eagerly; the second
  runs eagerly and is captured (a capture costs about one eager step), so a canvas of 12 to
  48 steps replays all but its first two, and a 4-step canvas breaks about even. The cache
  *contents* are read at replay time, so a cache truncated and re-encoded to the same length
  in the same storage is still read correctly.
  Why not one graph per cache-length bucket: that needs the decoder to take its positions
  and a key-padding mask as tensors (padded keys would otherwise get attention weight); the
  model does not today. Only the graphs of the current key are kept, so memory stays at one
  forward's activations.
- Host syncs. A capture fails on any host sync (`.tolist()`, `.item()`, a pageable host copy):
  then this key runs eagerly and the failure is logged once; correctness never depends on the
  graph.

Off CUDA (or with `enabled=False`) `denoise` is the model's own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
import torch

log = logging.getLogger(__name__)


def cache_key(cache, canvas: torch.Tensor, self_cond: torch.Tensor | None) -> tuple:
    """Everything a captured decoder forward depends on besides tensor contents."""
    storage = tuple(cache.read(layer)[0].data_ptr() for layer in range(cache.num_layers))
    cond = None if self_cond is None else (tuple(self_cond.shape), self_cond.dtype)
    return (id(cache), storage, cache.length, tuple(canvas.shape), canvas.dtype, cond)


class _Captured:
    """One graph with its static buffers."""

    def __init__(self, replay: Callable[[], None], canvas: torch.Tensor, self_cond: torch.Tensor | None,
                 logits: torch.Tensor):
        self.replay, self.canvas, self.self_cond, self.logits = replay, canvas, self_cond, logits

    def run(self, canvas: torch.Tensor, self_cond: torch.Tensor | None) -> torch.Tensor:
        self.canvas.copy_(canvas)
        if self_cond is not None:
            self.self_cond.copy_(self_cond)
        self.replay()
        return self.logits


def capture_cuda_graph(forward: Callable[[], torch.Tensor]) -> tuple[Callable[[], None], torch.Tensor]:
    """Capture `forward()` in a CUDA graph: (replay, its static output)."""
    graph = torch.cuda.CUDAGraph()
    # thread_local: CUDA work of other threads (the server's) does not break the capture
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        out = forward()
    return graph.replay, out


class GraphedDenoiser:
    """A model whose `denoise` replays CUDA graphs. `capture` (forward -> (replay, output)) is
    injectable so that the buffer and key logic can be tested off GPU."""

    def __init__(self, model, enabled: bool | None = None,
                 capture: Callable[[Callable[[], torch.Tensor]], tuple[Callable[[], None], torch.Tensor]] | None = None):
        self.model = model
        device = model.embed_tokens.weight.device
        self.enabled = (device.type == "cuda") if enabled is None else enabled
        self._capture = capture or capture_cuda_graph
        self._state: tuple | None = None  # the cache state the graphs below belong to
        self._graphs: dict[tuple, _Captured | None] = {}  # None: capture failed, run eagerly
        self.captures = 0
        self.replays = 0

    def __getattr__(self, name: str):  # everything but denoise is the model's
        return getattr(self.model, name)

    def denoise(self, canvas: torch.Tensor, cache, self_cond_logits: torch.Tensor | None = None) -> torch.Tensor:
        if not self.enabled:
            return self.model.denoise(canvas, cache, self_cond_logits)
        key = cache_key(cache, canvas, self_cond_logits)
        if key[:3] != self._state:  # a new cache state (a new canvas or prompt): old graphs are stale
            self._graphs.clear()
            self._state = key[:3]
        if self_cond_logits is None:
            # A canvas's first step, the only one without self-conditioning: a graph of it
            # would never be replayed.
            return self.model.denoise(canvas, cache, self_cond_logits)
        if key not in self._graphs:
            # First call of this key: run eagerly (it warms up autotuners and allocators, which
            # must not run during capture), then capture for the next calls.
            logits = self.model.denoise(canvas, cache, self_cond_logits)
            self._graphs[key] = self._try_capture(canvas, cache, self_cond_logits)
            return logits
        captured = self._graphs[key]
        if captured is None:
            return self.model.denoise(canvas, cache, self_cond_logits)
        self.replays += 1
        return captured.run(canvas, self_cond_logits)

    def reset(self) -> None:
        """Drop every graph (and the memory they hold)."""
        self._graphs.clear()
        self._state = None

    def _try_capture(self, canvas, cache, self_cond) -> _Captured | None:
        static_canvas = canvas.clone()
        static_cond = None if self_cond is None else self_cond.clone()
        try:
            replay, logits = self._capture(lambda: self.model.denoise(static_canvas, cache, static_cond))
        except Exception as err:  # noqa: BLE001 - any capture failure means: stay eager
            log.warning("denoising step not captured in a CUDA graph (running eagerly): %s", err)
            return None
        self.captures += 1
        return _Captured(replay, static_canvas, static_cond, logits)
