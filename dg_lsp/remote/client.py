"""HTTP to the remote server: one streaming POST at a time, abortable, with a deadline.

The requests run on an asyncio loop of their own (a daemon thread), with httpx2's async
client. The model thread that asked waits for the answer and watches its cancel flag; when
a newer keystroke sets it, the request's task is cancelled, which closes the connection: the
server sees the client go and can stop generating. `timeoutMs` bounds the whole request,
connection to last byte. Every failure becomes a `RemoteError` whose message says what
happened in the user's terms (the API key itself never appears in one).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable

import httpx2

from ..errors import Cancelled
from .protocol import MalformedAnswer, error_message

CANCEL_POLL_S = 0.005  # how often a waiting model thread looks at its cancel flag


class RemoteError(Exception):
    def __init__(self, reason: str, status: int | None = None, body: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.body = body  # the server's own error text (to recognize e.g. a refused logprobs)


class HttpClient:
    def __init__(self, base_url: str, timeout_s: float, api_key: str | None = None):
        self.base_url = base_url.rstrip("/").removesuffix("/v1")  # "/v1" is part of each kind's path
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="dg-remote-http")
        self._thread.start()
        # Made now, on its loop (its connections belong there): making one costs ~0.5 s (TLS setup),
        # which the first keystroke should not wait for.
        self._client: httpx2.AsyncClient = asyncio.run_coroutine_threadsafe(self._open(), self._loop).result()
        self.requests_sent = 0
        self.requests_aborted = 0

    async def _open(self) -> httpx2.AsyncClient:
        # Idle connections expire before common servers close them (uvicorn: 5 s), so a kept-alive
        # connection is never reused just as the server drops it.
        return httpx2.AsyncClient(timeout=httpx2.Timeout(self.timeout_s), headers=self._headers,
                                  limits=httpx2.Limits(keepalive_expiry=4.0))

    def post(self, path: str, body: dict, on_event: Callable[[str], None],
             cancel: Callable[[], bool] | None = None) -> None:
        """POST `body`; `on_event(data)` gets each server-sent event's data (or the whole JSON body).
        Blocks the calling thread; raises `Cancelled` when `cancel()` turns true, `RemoteError` on failure."""
        future = asyncio.run_coroutine_threadsafe(self._post(path, body, on_event), self._loop)
        self.requests_sent += 1
        while True:
            try:
                return future.result(timeout=CANCEL_POLL_S)
            except concurrent.futures.TimeoutError:
                if cancel is not None and cancel():
                    future.cancel()  # cancels the task: the stream, and its connection, close
                    self.requests_aborted += 1
                    raise Cancelled("superseded by a newer request") from None
            except concurrent.futures.CancelledError:
                raise Cancelled("the request was cancelled") from None

    async def _post(self, path: str, body: dict, on_event: Callable[[str], None]) -> None:
        url = self.base_url + path
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._client.stream("POST", url, json=body) as response:
                    if response.status_code >= 400:
                        said = error_message(await response.aread())
                        raise RemoteError(_status_reason(response.status_code, said), response.status_code, said)
                    if response.headers.get("content-type", "").startswith("text/event-stream"):
                        async for event in httpx2.EventSource(response):
                            if event.data.strip() == "[DONE]":
                                break
                            if event.data.strip():
                                on_event(event.data)
                    else:
                        on_event((await response.aread()).decode("utf-8", errors="replace"))
        except TimeoutError:
            raise RemoteError(f"no complete answer from {self.base_url} within {self.timeout_s * 1e3:.0f} ms "
                              "(dgLsp.remote.timeoutMs)") from None
        except httpx2.ConnectError as err:
            raise RemoteError(f"cannot connect to {self.base_url} ({_plain(err) or 'connection refused'}): "
                              "is the server running?") from None
        except httpx2.TimeoutException:
            raise RemoteError(f"{self.base_url} did not answer within {self.timeout_s * 1e3:.0f} ms "
                              "(dgLsp.remote.timeoutMs)") from None
        except (httpx2.TransportError, httpx2.StreamError) as err:
            raise RemoteError(f"the connection to {self.base_url} failed: {_plain(err) or type(err).__name__}") from None
        except MalformedAnswer as err:
            raise RemoteError(f"{self.base_url}{path}: {err}") from None

    def close(self) -> None:
        """Close the connections and end the loop's thread."""
        async def shutdown():
            await self._client.aclose()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=2)
        except Exception:  # closing is best effort: the process may be on its way out
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)


def _status_reason(status: int, message: str) -> str:
    said = f": {message}" if message else ""
    if status in (401, 403):
        return (f"the server refused the API key ({status}){said}; check the environment variable named by "
                "dgLsp.remote.apiKeyEnv")
    if status == 404:
        return f"not found (404){said}; check dgLsp.remote.url, kind and model"
    if status == 501:
        return f"not implemented (501){said}; for /infill the model needs FIM tokens"
    if status >= 500:
        return f"server error ({status}){said}"
    return f"the server rejected the request ({status}){said}"


def _plain(err: Exception) -> str:
    return str(err).strip()
