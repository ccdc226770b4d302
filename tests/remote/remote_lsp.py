"""`dg-lsp serve` with the remote engine, started over stdio the way an editor does (shared by
the end-to-end tests against the test double and against the real server)."""

import os
import sys

from lsprotocol import types
from pytest_lsp import client_capabilities, make_test_lsp_client

from ..server.test_e2e import wait_for_log


async def start_remote_server(remote: dict, env: dict | None = None, **settings):
    """A client connected to a fresh `dg-lsp serve` whose `dgLsp.remote` is `remote`; returns once
    the remote engine is ready (or failed, with `expect_failure`)."""
    expect_failure = settings.pop("expect_failure", False)
    client = make_test_lsp_client()
    await client.start_io(sys.executable, "-m", "dg_lsp", "serve", env={**os.environ, **(env or {})})
    options = {"dgLsp": {"engine": "remote", "minConfidence": 0.5, **settings,
                         "remote": {"family": "qwen", "timeoutMs": 3000, **remote}}}
    await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), initialization_options=options))
    await wait_for_log(client, "model not loaded" if expect_failure else "remote engine ready", timeout=30)
    return client


def shown(client, fragment: str) -> list[str]:
    """The window/showMessage texts that contain `fragment`."""
    return [m.message for m in client.messages if fragment in m.message]
