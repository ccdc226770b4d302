"""Greedy autoregressive decoding replayed from CUDA graphs: the fair baseline for diffusion.

Eager, a 26B-A4B token costs ~3,000 kernel launches and a host sync (the argmax read back), so
the CPU sets its pace and "diffusion is N times faster" against it measures the launcher. Here
each of `tokens` decoding steps (one token through the causal encoder, the LM head, the
argmax) is captured once in a CUDA graph of its own (its position in the KV cache is baked into
the graph, hence one graph per position), and the steps hand their token on through a static
device buffer: replaying the chain is GPU-bound, with one sync at the end, which is what a
static-cache AR decoder achieves. The captures share one memory pool and are replayed in the
order they were captured, which keeps that safe.

Built from the model's own pieces (`_embed`, `_run_layers`, `norm`, `logits`): `encode` itself
copies the token ids to the host for the cache's bookkeeping, which a capture refuses.
`capture` is injectable, so the chaining is tested on a CPU with a capture that simply re-runs
the forward (tests/quant/test_gpu_end_to_end_bench.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Capture = Callable[[Callable[[], torch.Tensor], object], tuple[Callable[[], None], object]]


def capture_cuda_graph(forward: Callable[[], torch.Tensor], pool) -> tuple[Callable[[], None], object]:
    """(replay, pool handle for the next capture)."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
        forward()
    return graph.replay, graph.pool()


def rerun(forward: Callable[[], torch.Tensor], pool) -> tuple[Callable[[], None], object]:
    """A stand-in for a capture off the GPU: replaying runs the forward again."""
    return forward, pool


class GraphedAutoregressive:
    """`decode(first)`: `tokens` greedy tokens after the prompt in `cache` (which must hold
    room for them), as a replay of per-position graphs captured by `capture_all`."""

    def __init__(self, model, cache, tokens: int, capture: Capture | None = None):
        self.model, self.cache, self.tokens = model, cache, tokens
        self._capture = capture or capture_cuda_graph
        self.start = cache.length
        device = model.embed_tokens.weight.device
        self._token = torch.zeros(1, 1, dtype=torch.long, device=device)  # the token each step reads
        self._out = torch.zeros(tokens, dtype=torch.long, device=device)  # every step's argmax
        self._replays: list[Callable[[], None]] = []

    def _step(self, i: int) -> torch.Tensor:
        model, cache = self.model, self.cache
        cache.length = self.start + i  # read at capture time only: the graph keeps the offsets
        x = model._embed(self._token)
        positions = torch.arange(cache.length, cache.length + 1, device=x.device)[None]
        hidden = model.norm(model._run_layers(x, positions, cache, encoding=True))
        nxt = model.logits(hidden[:, -1:]).argmax(dim=-1)  # [1, 1]
        self._out[i].copy_(nxt[0, 0])
        self._token.copy_(nxt)
        return self._out

    @torch.inference_mode()
    def capture_all(self, first: torch.Tensor) -> None:
        """Run each position once eagerly (autotuners and allocators warm up outside a capture),
        then capture it. The cache's length is set by hand: `encode` would commit token ids."""
        self._token.copy_(first.reshape(1, 1))
        pool = None
        for i in range(self.tokens):
            self._step(i)
            replay, pool = self._capture(lambda i=i: self._step(i), pool)
            self._replays.append(replay)
        self.cache.length = self.start

    @torch.inference_mode()
    def decode(self, first: torch.Tensor) -> torch.Tensor:
        """[tokens] greedy continuation of the prompt, from the token `first`."""
        self._token.copy_(first.reshape(1, 1))
        for replay in self._replays:
            replay()
        self.cache.length = self.start
        return self._out
