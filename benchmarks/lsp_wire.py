"""A bare JSON-RPC client for timing a language server over stdio.

A full client (pygls' LanguageClient) spends a fraction of a millisecond of its own on each
message (structuring params into lsprotocol types, futures, a reader thread hand-off); when
the figure to measure is the *server's* overhead, that would be counted against the server.
This client does no more than an editor must: `json.dumps`, a Content-Length header, a
write; on the way back a header, `json.loads`, and the future of the request.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any


class WireError(RuntimeError):
    """The server answered a request with a JSON-RPC error."""


class WireClient:
    def __init__(self, process: asyncio.subprocess.Process):
        self.process = process
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self.notifications: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, *command: str, cwd: str | None = None, stderr=None) -> "WireClient":
        process = await asyncio.create_subprocess_exec(
            *command, cwd=cwd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=stderr if stderr is not None else asyncio.subprocess.DEVNULL)
        return cls(process)

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    async def request(self, method: str, params: Any) -> Any:
        msg_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        self._send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        reply = await future
        if "error" in reply:
            raise WireError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result")

    async def close(self, timeout: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self.request("shutdown", None), timeout)
            self.notify("exit", None)
            await asyncio.wait_for(self.process.wait(), timeout)
        except (asyncio.TimeoutError, WireError, ConnectionError):
            if self.process.returncode is None:
                self.process.kill()
        self._reader.cancel()

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode("utf-8")
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    async def _read(self) -> None:
        stream = self.process.stdout
        while True:
            length = None
            while True:
                line = await stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length is None:
                continue
            message = json.loads(await stream.readexactly(length))
            if "method" in message:
                if "id" in message:  # a request from the server (progress, applyEdit): accept it
                    self._send({"jsonrpc": "2.0", "id": message["id"], "result": None})
                else:
                    self.notifications.append(message)
            elif (future := self._pending.pop(message.get("id"), None)) is not None and not future.done():
                future.set_result(message)
