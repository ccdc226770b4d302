"""A test double of an OpenAI-compatible completion server, in-process, for the failures a real
server cannot be made to produce on demand: a refused connection (stopped, then started again
on the same port), 401/403/4xx/5xx answers, malformed JSON, a slow answer, and a stream held
open so a test can see the client close the connection.

Not a model: it answers every request with the scripted `Behaviour`, and records what it got.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    mode: str = "ok"  # ok, status, malformed, slow, hold
    text: str = "return a + b"  # ok/slow: the completion, streamed in `pieces` chunks
    pieces: int = 3
    logprob: float | None = -0.001  # per streamed piece; None: no logprobs in the answer
    status: int = 500  # mode "status"
    body: str = '{"error": {"message": "boom"}}'
    delay_s: float = 0.0  # before answering (mode "slow")
    refuse_logprobs: bool = False  # answer 500 to a request that asks for logprobs (llama-cpp-python)


@dataclass
class Recorded:
    path: str
    body: dict
    headers: dict
    closed_early: bool = False  # the client closed the connection before the answer ended


class FakeCompletionServer:
    def __init__(self):
        self.behaviour = Behaviour()
        self.requests: list[Recorded] = []
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self.closed_event = threading.Event()  # set when a held stream sees the client go

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeCompletionServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the listening socket: new connections are refused (the port is kept for `start`)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _sse(data: dict | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def _handler(fake: FakeCompletionServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {"unparsed": raw.decode(errors="replace")}
            record = Recorded(self.path, body, dict(self.headers))
            fake.requests.append(record)
            b = fake.behaviour
            if b.refuse_logprobs and ("logprobs" in body or "n_probs" in body):
                return self._plain(500, json.dumps({"error": {"message": "logprobs is not supported for models "
                                                              "created with logits_all=False"}}))
            if b.mode == "status":
                return self._plain(b.status, b.body)
            if b.mode == "malformed":
                return self._stream([b"data: {not json\n\n"])
            if b.mode == "slow":
                time.sleep(b.delay_s)
            if b.mode == "hold":
                return self._hold(record)
            self._stream([_sse(self._chunk(piece, body)) for piece in _split(b.text, b.pieces)] + [_sse("[DONE]")])

        def _chunk(self, piece: str, body: dict) -> dict:
            logprob = fake.behaviour.logprob
            if self.path == "/infill":
                out = {"content": piece, "stop": False}
                if logprob is not None and "n_probs" in body:
                    out["completion_probabilities"] = [{"token": piece, "logprob": logprob}]
                return out
            choice = {"index": 0, "text": piece, "finish_reason": None, "logprobs": None}
            if logprob is not None and "logprobs" in body:
                choice["logprobs"] = {"tokens": [piece], "token_logprobs": [logprob]}
            return {"choices": [choice]}

        def _plain(self, status: int, text: str):
            data = text.encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, chunks: list[bytes]):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")

        def _hold(self, record: Recorded):
            """One chunk, then keep the stream open (pinging) until the client goes, up to 10 s."""
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            deadline = time.monotonic() + 10
            try:
                first = _sse(self._chunk("partial", record.body))
                self.wfile.write(b"%x\r\n%s\r\n" % (len(first), first))
                while time.monotonic() < deadline:
                    ping = b": ping\n\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(ping), ping))
                    self.wfile.flush()
                    time.sleep(0.02)
            except OSError:  # BrokenPipe / ConnectionReset: the client closed the connection
                record.closed_early = True
                fake.closed_event.set()
                self.close_connection = True

    return Handler


def _split(text: str, pieces: int) -> list[str]:
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[i : i + size] for i in range(0, len(text), size)]
