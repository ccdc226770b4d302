"""Keeps the engine resident: loads it in the background and says how that went.

The server answers while the model loads (completions are simply empty until it is
ready). A failed load is reported with its reason and the server stays up; a settings
change that names another model or device loads that one instead. With `dgLsp.engine =
"remote"` the engine is `dg_lsp.remote.RemoteEngine` (no weights to load: it checks its settings
and reads a tokenizer, if one is named); its outages are reported as host events too.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DgLspError
from .settings import Settings

log = logging.getLogger(__name__)

# Where `dg-lsp train` ships the default model (the default-model issue adds it).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "default"


@dataclass(frozen=True)
class HostEvent:
    kind: str  # "begin", "end" or "failed"; a remote engine's "outage", "recovered" or "notice"
    message: str


class ModelHost:
    """State: "idle" (nothing asked yet), "loading", "ready" or "failed"."""

    def __init__(self, on_event: Callable[[HostEvent], None]):
        self.on_event = on_event
        self.state = "idle"
        self.error = ""
        self.engine = None
        self.model_dir: Path | None = None
        self.device = ""
        self._loaded_key: tuple | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()

    def resolve_model_dir(self, settings: Settings) -> Path | None:
        if settings.modelPath:
            return Path(settings.modelPath).expanduser()
        if os.environ.get("DG_LSP_MODEL"):
            return Path(os.environ["DG_LSP_MODEL"]).expanduser()
        return DEFAULT_MODEL_DIR if (DEFAULT_MODEL_DIR / "config.json").is_file() else None

    def load(self, settings: Settings) -> None:
        """Start loading in a background thread (nothing to do if that model is already loaded)."""
        remote = settings.engine == "remote"
        model_dir = None if remote else self.resolve_model_dir(settings)
        key = (("remote", settings.remote) if remote else (model_dir, settings.device, settings.quantization)) + (
            settings.contextTokens,)
        with self._lock:
            if key == self._loaded_key and self.state in ("loading", "ready"):
                return
            self._loaded_key = key
            self.state, self.error = "loading", ""
            self._ready.clear()
        if remote:
            threading.Thread(target=self._load_remote, args=(settings, key), daemon=True, name="model-load").start()
            return
        if model_dir is None:
            self._fail("no model configured: set dgLsp.modelPath (or DG_LSP_MODEL) to a local model directory")
            return
        threading.Thread(target=self._load, args=(model_dir, settings, key), daemon=True, name="model-load").start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def _load(self, model_dir: Path, settings: Settings, key: tuple) -> None:
        import torch

        from ..engine.engine import Engine

        # Leave a core to the protocol, parsing and context thread: on a 2-core laptop, torch's
        # default of one thread per core would starve it and every keystroke would queue.
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
        device = settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.on_event(HostEvent("begin", f"loading {model_dir} on {device}"))
        try:
            if device == "cuda" and not torch.cuda.is_available():
                raise DgLspError("dgLsp.device is cuda, but this machine has no CUDA GPU")
            engine = Engine.from_directory(model_dir, device=device, progress=False,
                                           quantization=settings.quantization, context_tokens=settings.contextTokens)
        except DgLspError as err:
            self._fail(str(err), key)
            return
        except Exception as err:  # a model that breaks loading must not take the server down
            log.exception("model load failed")
            self._fail(f"{type(err).__name__}: {err}", key)
            return
        with self._lock:
            if key != self._loaded_key:  # settings changed while loading: a newer load owns the state
                return
            self._replace(engine)
            self.model_dir, self.device, self.state = model_dir, device, "ready"
            self._ready.set()
        self.on_event(HostEvent("end", f"model ready: {model_dir.name} on {device}"))

    def _load_remote(self, settings: Settings, key: tuple) -> None:
        from ..remote import RemoteEngine

        remote = settings.remote
        self.on_event(HostEvent("begin", f"remote engine: {remote.url or '(no url)'} ({remote.kind})"))
        try:
            engine = RemoteEngine(remote, settings.contextTokens,
                                  on_event=lambda kind, message: self.on_event(HostEvent(kind, message)))
        except DgLspError as err:
            self._fail(str(err), key)
            return
        with self._lock:
            if key != self._loaded_key:
                engine.close()
                return
            self._replace(engine)
            self.model_dir, self.device, self.state = None, "remote", "ready"
            self._ready.set()
        self.on_event(HostEvent("end", f"remote engine ready: {engine.label} ({remote.kind})"))

    def _replace(self, engine) -> None:
        """Install `engine`; a remote engine it replaces closes its connections."""
        old, self.engine = self.engine, engine
        if old is not None and old is not engine and hasattr(old, "close"):
            old.close()

    def _fail(self, message: str, key: tuple | None = None) -> None:
        with self._lock:
            if key is not None and key != self._loaded_key:
                return
            self._replace(None)
            self.state, self.error = "failed", message
            self._ready.set()
        self.on_event(HostEvent("failed", message))
