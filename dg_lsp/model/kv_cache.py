"""The encoder's key/value cache, which the decoder reads but never writes.

Every layer keeps the keys and values of all encoded positions (sliding layers too), so the
cache can be cut back to any prefix and extended from there: that is what the prompt cache
relies on. Sliding layers only *read* their last `window - 1` positions.
"""

from __future__ import annotations

import torch


class KVCache:
    def __init__(self, num_layers: int, batch_size: int = 1, capacity: int = 256):
        self.num_layers = num_layers
        self.batch_size = batch_size
        self.length = 0  # positions written and committed by the encoder
        self.token_ids: torch.Tensor | None = None  # [B, length]: the tokens those positions hold
        self._capacity = capacity
        self._keys: list[torch.Tensor | None] = [None] * num_layers  # each [B, Hkv, capacity, D]
        self._values: list[torch.Tensor | None] = [None] * num_layers

    def write(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store keys/values [B, Hkv, T, D] at positions [length, length + T) of one layer and
        return that layer's keys/values for positions [0, length + T). `commit(ids)` must follow
        once every layer has been written."""
        end = self.length + keys.shape[2]
        self._ensure(layer, keys, end)
        self._keys[layer][:, :, self.length:end] = keys
        self._values[layer][:, :, self.length:end] = values
        return self._keys[layer][:, :, :end], self._values[layer][:, :, :end]

    def commit(self, input_ids: torch.Tensor) -> None:
        """Record the T tokens [B, T] just written by every layer."""
        ids = input_ids.detach().to("cpu", torch.long)
        self.token_ids = ids if self.token_ids is None else torch.cat([self.token_ids, ids], dim=1)
        self.length += ids.shape[1]

    def read(self, layer: int, last: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Committed keys/values of one layer, or only its `last` positions."""
        start = 0 if last is None else max(0, self.length - last)
        if self._keys[layer] is None:
            raise RuntimeError("the decoder needs an encoded prompt: the KV cache is empty")
        return self._keys[layer][:, :, start:self.length], self._values[layer][:, :, start:self.length]

    def truncate(self, length: int) -> None:
        """Forget every position from `length` on (the encoder is causal, so earlier ones stay valid)."""
        self.length = min(self.length, max(0, length))
        if self.token_ids is not None:
            self.token_ids = self.token_ids[:, : self.length]

    def copy_prefix(self, other: KVCache, length: int) -> None:
        """Start this (empty) cache as a copy of the first `length` positions of `other`."""
        length = min(length, other.length)
        for layer in range(self.num_layers):
            keys, values = other._keys[layer], other._values[layer]
            if keys is None:
                continue
            self._ensure(layer, keys, length)
            self._keys[layer][:, :, :length] = keys[:, :, :length]
            self._values[layer][:, :, :length] = values[:, :, :length]
        self.token_ids = other.token_ids[:, :length].clone()
        self.length = length

    def shrink(self, capacity: int) -> None:
        """Give memory back when the buffers hold more than twice `capacity` positions (an entry
        that grew for one long prompt and now holds a short one)."""
        capacity = max(capacity, self.length)
        self._capacity = min(self._capacity, capacity)  # the initial size no longer holds the memory
        for layer in range(self.num_layers):
            keys = self._keys[layer]
            if keys is None or keys.shape[2] <= 2 * capacity:
                continue
            self._keys[layer] = keys[:, :, :capacity].clone()
            self._values[layer] = self._values[layer][:, :, :capacity].clone()

    def capacity(self) -> int:
        return max((k.shape[2] for k in self._keys if k is not None), default=0)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._keys + self._values if t is not None)

    def _ensure(self, layer: int, like: torch.Tensor, needed: int) -> None:
        current = self._keys[layer]
        if current is not None and current.shape[2] >= needed:
            return
        # Grow geometrically so a prompt typed token by token does not reallocate every time.
        capacity = max(self._capacity, needed, 2 * current.shape[2] if current is not None else 0)
        b, h, _, d = like.shape
        keys = like.new_zeros(b, h, capacity, d)
        values = like.new_zeros(b, h, capacity, d)
        if current is not None:
            keys[:, :, : self.length] = current[:, :, : self.length]
            values[:, :, : self.length] = self._values[layer][:, :, : self.length]
        self._keys[layer], self._values[layer] = keys, values
