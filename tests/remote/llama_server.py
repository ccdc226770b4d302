"""A real OpenAI-compatible completion server for the remote-backend tests: llama-cpp-python's.

The remote backend is tested against a real server, not a mock: llama-cpp-python's
`python -m llama_cpp.server`, serving the tiny FIM-capable GGUF that `tiny_gguf.py` builds, in a
subprocess on a free local port, one thread. The session fixture `llama_server` starts it once
for the whole test session and yields a `RealServer` (its base URL and the remote kinds it
answers); `start_llama_cpp_python_server` starts another one with other options (an API key,
say) for a test that needs it.

What llama-cpp-python (0.3.x) serves, checked in test_real_server.py:
- `openai`: `/v1/completions` with a prompt rendered by the client (FIM tokens in the prompt
  text are parsed as the special tokens they are);
- `openai-suffix`: `/v1/completions` with `prompt` + `suffix` (the server builds the FIM prompt);
- not `llamacpp-infill`: `/infill` is llama.cpp's own `llama-server`, which llama-cpp-python
  does not serve (404).

`llamacpp-infill` needs llama.cpp's `llama-server` binary. llama-cpp-python's wheel cannot carry
it cheaply (llama.cpp's server needs its whole tools tree, whose shared libraries that wheel does
not install), and no PyPI package ships one prebuilt, so the `llama_infill_server` fixture runs
one only where it is found ($DG_LSP_LLAMA_SERVER, or `llama-server` on PATH) and skips otherwise,
in CI too. A static one builds from llama.cpp's sources (the llama-cpp-python sdist's
vendor/llama.cpp) with:

    cmake -S vendor/llama.cpp -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF
    cmake --build build --target llama-server

llama-cpp-python installs from source (a CMake build of llama.cpp): where it is missing the
tests skip, except in CI, where they fail (tests/_ci.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests._ci import skip_or_fail

KIND_OPENAI = "openai"
KIND_OPENAI_SUFFIX = "openai-suffix"
KIND_INFILL = "llamacpp-infill"
LLAMA_CPP_PYTHON_KINDS = frozenset({KIND_OPENAI, KIND_OPENAI_SUFFIX})
# llama-server's /v1/completions drops `suffix` silently; its /infill builds the FIM prompt itself.
LLAMA_SERVER_KINDS = frozenset({KIND_OPENAI, KIND_INFILL})
LLAMA_SERVER_ENV = "DG_LSP_LLAMA_SERVER"
MODEL_ALIAS = "tiny-qwen2-fim"
READY_TIMEOUT_S = 120.0
# The modules `python -m llama_cpp.server` imports: the package and its [server] extra.
SERVER_MODULES = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")


@dataclass(frozen=True)
class RealServer:
    """A running completion server: where it listens and what it answers."""

    url: str  # base URL, no trailing slash: http://127.0.0.1:PORT
    kinds: frozenset[str]  # the dgLsp.remote kinds it serves
    model: str  # the name to send as "model"
    model_path: Path
    log_path: Path  # the server's stdout and stderr
    api_key: str | None = None

    def supports(self, kind: str) -> bool:
        return kind in self.kinds

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)


def require_llama_cpp_server() -> None:
    """Skip (fail in CI) when llama-cpp-python or its [server] extra is not installed."""
    missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        skip_or_fail(f"llama-cpp-python's server is not installed (missing {', '.join(missing)}): "
                     "pip install -e '.[dev]' builds it")


def require_gguf_tools() -> None:
    missing = [name for name in ("gguf", "transformers") if importlib.util.find_spec(name) is None]
    if missing:
        skip_or_fail(f"building the tiny GGUF needs {', '.join(missing)}: pip install -e '.[dev]'")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str, timeout: float = 5.0, api_key: str | None = None) -> Any:
    request = urllib.request.Request(url, headers=_auth(api_key))
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def post_json(url: str, body: dict[str, Any], timeout: float = 60.0, api_key: str | None = None) -> Any:
    """POST `body` as JSON and return the decoded answer (urllib.error.HTTPError on 4xx/5xx)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json", **_auth(api_key)})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def post_stream(url: str, body: dict[str, Any], timeout: float = 60.0,
                api_key: str | None = None) -> Iterator[dict[str, Any] | str]:
    """POST `body` with stream=true and yield each server-sent event's data: a decoded chunk, or
    the final "[DONE]" string."""
    request = urllib.request.Request(url, data=json.dumps({**body, "stream": True}).encode("utf-8"),
                                     method="POST", headers={"Content-Type": "application/json",
                                                             "Accept": "text/event-stream", **_auth(api_key)})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        for raw in response:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data:"):
                continue  # blank separators, ": ping" comments
            data = line[len("data:"):].strip()
            yield data if data == "[DONE]" else json.loads(data)


def _auth(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def wait_until_ready(url: str, process: subprocess.Popen, log_path: Path, timeout: float,
                     api_key: str | None = None) -> None:
    """Poll GET /v1/models until the server answers; a clear error if it exits or never does."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the completion server exited with code {process.returncode} before it was ready; "
                               f"its log ({log_path}):\n{_tail(log_path)}")
        with contextlib.suppress(OSError, ValueError):  # refused, reset, or half-started
            get_json(f"{url}/v1/models", timeout=2.0, api_key=api_key)
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the completion server at {url} did not answer GET /v1/models within "
                               f"{timeout:.0f} s; its log ({log_path}):\n{_tail(log_path)}")
        time.sleep(0.1)


def _tail(path: Path, lines: int = 40) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    return "(no log)"


@contextlib.contextmanager
def _serve(command: list[str], port: int, kinds: frozenset[str], model_path: Path, log_path: Path,
           api_key: str | None, ready_timeout: float) -> Iterator[RealServer]:
    """Run `command` (a server listening on `port`) until the block ends."""
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(url, process, log_path, ready_timeout, api_key=api_key)
        yield RealServer(url=url, kinds=kinds, model=MODEL_ALIAS, model_path=model_path, log_path=log_path,
                         api_key=api_key)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def start_llama_cpp_python_server(model_path: Path, log_dir: Path, *, api_key: str | None = None,
                                  n_ctx: int = 2048,
                                  ready_timeout: float = READY_TIMEOUT_S) -> Iterator[RealServer]:
    """Run llama-cpp-python's `python -m llama_cpp.server` on `model_path` until the block ends."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--model_alias", MODEL_ALIAS,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
               # One thread: CI's machine has two cores and the tests share them.
               "--n_threads", "1", "--n_threads_batch", "1"]
    if api_key:
        command += ["--api_key", api_key]
    with _serve(command, port, LLAMA_CPP_PYTHON_KINDS, model_path, log_dir / f"llama-cpp-python-{port}.log",
                api_key, ready_timeout) as server:
        yield server


def find_llama_server() -> Path | None:
    """llama.cpp's `llama-server` binary: $DG_LSP_LLAMA_SERVER, else `llama-server` on PATH."""
    configured = os.environ.get(LLAMA_SERVER_ENV, "").strip()
    if configured:
        path = Path(configured).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise RuntimeError(f"{LLAMA_SERVER_ENV}={configured} is not an executable file")
        return path
    found = shutil.which("llama-server")
    return Path(found) if found else None


@contextlib.contextmanager
def start_llama_cpp_server(binary: Path, model_path: Path, log_dir: Path, *, api_key: str | None = None,
                           n_ctx: int = 2048, ready_timeout: float = READY_TIMEOUT_S) -> Iterator[RealServer]:
    """Run llama.cpp's own `llama-server` (the one with `/infill`) on `model_path` until the block ends."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    command = [str(binary), "--model", str(model_path), "--alias", MODEL_ALIAS, "--host", "127.0.0.1",
               "--port", str(port), "--ctx-size", str(n_ctx), "--threads", "1", "--threads-batch", "1",
               "--parallel", "1", "--no-webui"]
    if api_key:
        command += ["--api-key", api_key]
    with _serve(command, port, LLAMA_SERVER_KINDS, model_path, log_dir / f"llama-server-{port}.log",
                api_key, ready_timeout) as server:
        yield server


# -- pytest fixtures (re-exported by tests/remote/conftest.py) --------------------------------


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Qwen2 GGUF with FIM tokens, built once per session (a few seconds)."""
    require_gguf_tools()
    from tests.remote.tiny_gguf import build_tiny_gguf

    return build_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf"))


@pytest.fixture(scope="session")
def llama_server(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    """llama-cpp-python's server on the tiny GGUF, shared by the session (no API key)."""
    require_llama_cpp_server()
    with start_llama_cpp_python_server(tiny_gguf, tmp_path_factory.mktemp("llama-server")) as server:
        yield server


@pytest.fixture(scope="session")
def llama_infill_server(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    """llama.cpp's `llama-server` on the tiny GGUF, for the `llamacpp-infill` kind. No package
    installs it, CI's included, so without one this skips (even in CI)."""
    binary = find_llama_server()
    if binary is None:
        pytest.skip(f"no llama.cpp llama-server binary (set {LLAMA_SERVER_ENV} or put llama-server on PATH)")
    with start_llama_cpp_server(binary, tiny_gguf, tmp_path_factory.mktemp("llama-infill-server")) as server:
        yield server
