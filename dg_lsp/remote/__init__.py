"""The remote engine: model calls go to an OpenAI-compatible server (vLLM, llama.cpp,
llama-cpp-python, Ollama) while context, post-processing, caching and cancellation stay local.

`templates` (prompt layout and stop strings per model family), `tokenizer` (a local copy of the
model's tokenizer), `prompts` (text prompts under the token budget), `protocol` (request bodies
and answer parsing per server kind), `client` (streaming, abortable HTTP), `health` (outages and
backoff) and `engine` (the `Engine`-shaped front).
"""

from .engine import RemoteEngine

__all__ = ["RemoteEngine"]
