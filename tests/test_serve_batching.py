"""Grouping of concurrent requests (``medner.serve.batching``), with a fake model."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from medner.document import Document, Span
from medner.serve.batching import MicroBatcher, Overloaded, ShuttingDown


class FakeModel:
    """Echoes texts as documents; records batch sizes and which thread ran them."""

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()

    def __call__(self, texts: list[str]) -> list[Document]:
        self.batches.append(list(texts))
        self.threads.add(threading.current_thread().name)
        if any("boom" in t for t in texts):
            raise RuntimeError("bad text")
        time.sleep(self.delay)  # blocks like a forward pass would
        return [Document(str(i + 1), t, (Span(0, len(t), "X", t),) if t else ())
                for i, t in enumerate(texts)]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_batches_and_get_their_own_results():
    model = FakeModel()

    async def main():
        batcher = MicroBatcher(model, max_batch_texts=8)
        texts = [[f"r{i}-a", f"r{i}-b"] if i % 3 == 0 else [f"r{i}"] for i in range(12)]
        results = await asyncio.gather(*(batcher.submit(t) for t in texts))
        await batcher.close()
        return texts, results, batcher.stats

    texts, results, stats = run(main())
    for sent, docs in zip(texts, results, strict=True):
        assert [d.text for d in docs] == sent
    assert all(len(b) <= 8 for b in model.batches)
    assert len(model.batches) < len(texts)  # grouped
    assert [t for b in model.batches for t in b] == [t for sent in texts for t in sent]  # FIFO
    assert stats.requests == 12 and stats.texts == 16
    assert model.threads and not any(name == "MainThread" for name in model.threads)


def test_a_lone_request_does_not_wait_for_company():
    model = FakeModel(delay=0)

    async def main():
        batcher = MicroBatcher(model)
        await batcher.submit(["warm up"])
        started = time.perf_counter()
        await batcher.submit(["alone"])
        elapsed = time.perf_counter() - started
        await batcher.close()
        return elapsed

    assert run(main()) < 0.5


def test_a_request_larger_than_the_batch_runs_alone():
    model = FakeModel(delay=0)

    async def main():
        batcher = MicroBatcher(model, max_batch_texts=2)
        docs = await batcher.submit(["a", "b", "c", "d", "e"])
        await batcher.close()
        return docs

    assert [d.text for d in run(main())] == ["a", "b", "c", "d", "e"]
    assert model.batches == [["a", "b", "c", "d", "e"]]


def test_the_event_loop_keeps_running_during_a_model_call():
    model = FakeModel(delay=0.3)

    async def main():
        batcher = MicroBatcher(model)
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await batcher.submit(["x"])
        task.cancel()
        await batcher.close()
        return ticks

    assert run(main()) >= 10


def test_a_failing_request_does_not_fail_the_others():
    model = FakeModel(delay=0.05)

    async def main():
        batcher = MicroBatcher(model, max_batch_texts=16)
        results = await asyncio.gather(batcher.submit(["warm"]), batcher.submit(["fine"]),
                                       batcher.submit(["boom"]), batcher.submit(["also fine"]),
                                       return_exceptions=True)
        await batcher.close()
        return results, batcher.stats

    (warm, fine, boom, also), stats = run(main())
    assert [d.text for d in fine] == ["fine"]
    assert [d.text for d in also] == ["also fine"]
    assert isinstance(boom, RuntimeError)
    assert stats.failed_batches >= 1


def test_full_queue_is_overloaded_and_close_fails_the_queue():
    model = FakeModel(delay=0.2)

    async def main():
        batcher = MicroBatcher(model, max_queue=2)
        first = asyncio.create_task(batcher.submit(["1"]))
        await asyncio.sleep(0.05)  # "1" is now in the model; the queue is empty
        queued = [asyncio.create_task(batcher.submit([str(i)])) for i in (2, 3)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await batcher.submit(["4"])
        await batcher.close()
        with pytest.raises(ShuttingDown):
            await batcher.submit(["5"])
        return await first, await asyncio.gather(*queued, return_exceptions=True)

    first, queued = run(main())
    assert [d.text for d in first] == ["1"]
    assert all(isinstance(r, ShuttingDown) for r in queued)


def test_an_idle_server_does_not_wait():
    model = FakeModel(delay=0)

    async def main():
        batcher = MicroBatcher(model, max_wait_ms=500)
        await batcher.submit(["warm up"])
        await asyncio.sleep(0.6)  # idle for longer than max_wait
        started = time.perf_counter()
        await batcher.submit(["alone"])
        elapsed = time.perf_counter() - started
        await batcher.close()
        return elapsed

    assert run(main()) < 0.25


def closed_loop_batches(max_wait_ms: float, clients: int = 8, rounds: int = 6,
                        delay: float = 0.1) -> float:
    """Mean batch size when ``clients`` each send ``rounds`` requests one after the other."""
    model = FakeModel(delay=delay)

    async def main():
        batcher = MicroBatcher(model, max_batch_texts=64, max_wait_ms=max_wait_ms)

        async def client(i):
            for r in range(rounds):
                await batcher.submit([f"c{i}-{r}"])
                await asyncio.sleep(0.002 + 0.001 * i)  # round trips differ a little

        await asyncio.gather(*(client(i) for i in range(clients)))
        await batcher.close()
        return batcher.stats.to_dict()["mean_batch_texts"]

    return run(main())


def test_waiting_after_a_batch_keeps_clients_in_one_batch():
    # Without the wait, the clients answered by one batch miss the next one: cohorts.
    assert closed_loop_batches(max_wait_ms=0) <= 5
    # Clients come back within 2-9 ms; the wait allows 10% of the 500 ms batch, which leaves
    # room for scheduling delays on a loaded machine (100 ms batches failed once on 2 cores).
    assert closed_loop_batches(max_wait_ms=200, delay=0.5) >= 7
    # A model call so short that a tenth of it is shorter than the round trip: no wait pays.
    assert closed_loop_batches(max_wait_ms=200, delay=0.005) <= 5


def test_the_wait_ends_as_soon_as_the_clients_are_back(monkeypatch):
    from medner.serve import batching

    monkeypatch.setattr(batching, "WAIT_FRACTION", 100.0)  # the cap alone bounds the wait
    started = time.perf_counter()
    assert closed_loop_batches(max_wait_ms=2000, delay=0.03) >= 7
    assert time.perf_counter() - started < 2.0  # 6 rounds, never the full 2 s wait


def test_the_app_groups_concurrent_http_requests():
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from medner.serve.app import create_app

    fake = FakeModel(delay=0.05)

    class Model:
        meta = {"backend": "fake"}
        labels = ("X",)
        schema = None

        def extract(self, texts):
            return fake(texts)

    app = create_app(Model(), max_batch_texts=16)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            responses = await asyncio.gather(*(
                client.post("/v1/extract", json={"text": f"t{i}"}) for i in range(16)))
            health = (await client.get("/healthz")).json()
        await app.state.batcher.close()
        return responses, health

    responses, health = run(main())
    assert [r.status_code for r in responses] == [200] * 16
    assert [r.json()["documents"][0]["text"] for r in responses] == [f"t{i}" for i in range(16)]
    assert [r.json()["documents"][0]["id"] for r in responses] == ["1"] * 16
    assert health["batching"]["requests"] == 16
    assert health["batching"]["batches"] < 16
