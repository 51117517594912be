"""Group concurrent requests into small batches for one model call, off the event loop.

While the model works on one batch, new requests queue up; when it is free, the worker takes
every queued request (up to ``max_batch_texts`` texts) as the next batch. A lone request
therefore runs at once, and under load batches form by themselves, so the server gets close
to offline batch throughput without a fixed waiting window. ``max_wait_ms`` adds one if
wanted (it only pays when requests arrive just after each other and the model is idle).

Model calls run one at a time on a dedicated thread: torch already uses every core for one
forward pass, and a fast tokenizer must not be used from two threads at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from medner.document import Document

log = logging.getLogger(__name__)

RunBatch = Callable[[list[str]], Sequence[Document]]


class Overloaded(Exception):
    """The queue is full; the client should retry later."""


class ShuttingDown(Exception):
    """The server is stopping; queued requests are answered with this."""


@dataclass
class _Request:
    texts: list[str]
    future: asyncio.Future


@dataclass
class BatcherStats:
    requests: int = 0
    texts: int = 0
    batches: int = 0
    failed_batches: int = 0

    def to_dict(self) -> dict[str, float]:
        return {"requests": self.requests, "texts": self.texts, "batches": self.batches,
                "failed_batches": self.failed_batches,
                "mean_batch_texts": round(self.texts / self.batches, 2) if self.batches else 0.0}


class MicroBatcher:
    """``await batcher.submit(texts)`` -> one Document per text, computed in a shared batch."""

    def __init__(self, run: RunBatch, *, max_batch_texts: int = 32, max_wait_ms: float = 0.0,
                 max_queue: int = 1024) -> None:
        if max_batch_texts < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_texts and max_queue must be >= 1, max_wait_ms >= 0")
        self.run = run
        self.max_batch_texts = max_batch_texts
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.stats = BatcherStats()
        self._pending: deque[_Request] = deque()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def queued(self) -> int:
        return len(self._pending)

    def _start(self) -> None:
        # Created lazily inside the running loop: the app may be built outside any loop.
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medner-model")
        self._worker = asyncio.get_running_loop().create_task(self._loop(), name="medner-batcher")

    async def submit(self, texts: Sequence[str]) -> list[Document]:
        if self._closed:
            raise ShuttingDown("the server is shutting down")
        if self._worker is None:
            self._start()
        if len(self._pending) >= self.max_queue:
            raise Overloaded(f"{len(self._pending)} requests are already waiting")
        request = _Request(list(texts), asyncio.get_running_loop().create_future())
        self._pending.append(request)
        self._wake.set()
        return await request.future

    def _take(self) -> list[_Request]:
        """Whole requests from the front of the queue, up to ``max_batch_texts`` texts (a larger
        request runs alone). Requests whose client has gone are dropped."""
        batch: list[_Request] = []
        size = 0
        while self._pending:
            nxt = self._pending[0]
            if nxt.future.done():
                self._pending.popleft()
                continue
            if batch and size + len(nxt.texts) > self.max_batch_texts:
                break
            batch.append(self._pending.popleft())
            size += len(nxt.texts)
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            await self._wake.wait()
            if self.max_wait and sum(len(r.texts) for r in self._pending) < self.max_batch_texts:
                await asyncio.sleep(self.max_wait)
            batch = self._take()
            if not self._pending:
                self._wake.clear()
            if batch:
                await self._run(loop, batch)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Request]) -> None:
        texts = [t for r in batch for t in r.texts]
        try:
            docs = await loop.run_in_executor(self._executor, self.run, texts)
            if len(docs) != len(texts):
                raise RuntimeError(f"the model returned {len(docs)} documents for {len(texts)} "
                                   "texts")
        except Exception as exc:  # noqa: BLE001 - every waiting request gets an answer
            self.stats.failed_batches += 1
            if len(batch) > 1:
                # One bad request must not fail the others: run each alone to find it.
                for request in batch:
                    await self._run(loop, [request])
                return
            log.error("model call failed for a request of %d text(s)", len(texts),
                      exc_info=(type(exc), exc, exc.__traceback__))
            if not batch[0].future.done():
                batch[0].future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.requests += len(batch)
        self.stats.texts += len(texts)
        offset = 0
        for request in batch:
            part = list(docs[offset:offset + len(request.texts)])
            offset += len(request.texts)
            if not request.future.done():
                request.future.set_result(part)

    async def close(self) -> None:
        """Fail what is still queued, let a batch in flight finish, stop the worker."""
        self._closed = True
        while self._pending:
            request = self._pending.popleft()
            if not request.future.done():
                request.future.set_exception(ShuttingDown("the server is shutting down"))
        if self._worker is not None:
            self._wake.set()
            await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=True)
