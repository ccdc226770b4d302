"""Model work runs on one thread, newest first.

Every request belongs to a lane ("completion", "command"). A new job in a lane sets the
cancel flag of the job before it, which the engine checks between denoising steps, so a
fast typist never waits behind completions nobody will see. `$/cancelRequest` (an
asyncio cancellation of the handler) sets the flag too, and so do `shutdown` and `exit`:
the process then ends within a denoising step, however long the request would have run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..errors import Cancelled

T = TypeVar("T")


class ModelWorker:
    def __init__(self):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dg-model")
        self._newest: dict[str, tuple[threading.Event, asyncio.Future]] = {}
        self.started = 0
        self.cancelled = 0
        self._stopped = False

    async def run(self, lane: str, work: Callable[[Callable[[], bool]], T]) -> T:
        """Run `work(is_cancelled)` on the model thread; raises `Cancelled` if superseded.

        A superseded request returns at once (its asyncio future is cancelled) instead of
        waiting for the model thread; the thread drops the job when it reaches it, or stops
        it at the next denoising step if it is running."""
        if self._stopped:
            raise Cancelled("the server is shutting down")
        flag = threading.Event()

        def job() -> T:
            if flag.is_set():  # superseded while queued: don't even start
                raise Cancelled("superseded by a newer request")
            return work(flag.is_set)

        future = asyncio.get_running_loop().run_in_executor(self._executor, job)
        if (previous := self._newest.get(lane)) is not None:
            previous[0].set()
            previous[1].cancel()
        self._newest[lane] = (flag, future)
        self.started += 1
        try:
            return await future
        except asyncio.CancelledError:
            superseded = flag.is_set()
            flag.set()
            self.cancelled += 1
            if superseded:
                raise Cancelled("superseded by a newer request") from None
            raise  # $/cancelRequest: pygls answers RequestCancelled
        except Cancelled:
            self.cancelled += 1
            raise
        finally:
            if self._newest.get(lane, (None,))[0] is flag:
                del self._newest[lane]

    def cancel_all(self) -> None:
        for flag, _ in self._newest.values():
            flag.set()

    def shutdown(self) -> None:
        """Cancel everything and take no more work (the thread ends after its current step)."""
        self._stopped = True
        self.cancel_all()
        self._executor.shutdown(wait=False, cancel_futures=True)
