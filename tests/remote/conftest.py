"""The real completion server and its tiny model, shared by every test under tests/remote/."""

from tests.remote.llama_server import llama_infill_server, llama_server, tiny_gguf  # noqa: F401  (fixtures)
