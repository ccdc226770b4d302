"""The read callback tree-sitter parses through, without the leak of the Python binding.

A parse must go through a read callback to be stoppable (`progress_callback` is ignored for
a bytestring). py-tree-sitter 0.25 and 0.26 keep one reference to every chunk such a
callback returns (`parser_read_wrapper` takes a buffer of the returned object and never
drops the call's own reference), so each budgeted re-parse leaked the chunks it read: about
70 KB a keystroke, 20 MB per thousand completion requests in `benchmarks/soak.py`.

`ChunkReader` remembers what it handed out, and `release()` (after the parse) drops the one
reference the binding keeps. Whether the binding keeps it is measured once per process
(`binding_keeps_chunks`), so a fixed binding is left alone rather than under-counted.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import sys

from tree_sitter import Parser

CHUNK_BYTES = 1 << 16  # what one read hands over


class ChunkReader:
    """`reader(byte, point)` returns the source from `byte` on, a chunk at a time."""

    def __init__(self, source: bytes):
        self.source = source
        self._handed_out: list[bytes] = []

    def __call__(self, byte: int, _point) -> bytes:
        chunk = self.source[byte : byte + CHUNK_BYTES]
        self._handed_out.append(chunk)
        return chunk

    def release(self) -> None:
        """Drop the references the binding kept to the chunks of the parse that just returned."""
        if binding_keeps_chunks():
            for chunk in self._handed_out:
                ctypes.pythonapi.Py_DecRef(ctypes.py_object(chunk))
        self._handed_out.clear()
        self.source = b""  # the tree keeps this reader as its "source": not the whole text with it


@functools.cache
def binding_keeps_chunks() -> bool:
    """Parse once through a callback and count the references left on what it returned."""
    import tree_sitter_python  # a dependency: any grammar does for the probe

    from tree_sitter import Language

    parser = Parser(Language(tree_sitter_python.language()))
    chunk = bytes(bytearray(b"x = 1\n" * 8))  # a fresh object, not a cached constant
    before = sys.getrefcount(chunk)
    parser.parse(lambda byte, _point: chunk if byte == 0 else b"")
    gc.collect()
    return sys.getrefcount(chunk) > before
