"""Load test for ``medner serve``: concurrent clients on loopback vs offline batch throughput.

    python benchmarks/serve_load.py MODEL_DIR /path/to/CDR_DevelopmentSet.PubTator.txt \
        [--requests 1000] [--concurrency 16] [--time-limit 900]

1. Offline: load the model here and time ``model.extract`` over the abstracts (the same
   ones the clients send), in batches of ``--offline-batch`` -> abstracts/s. Measured
   before and again after the online phase (the machine is shared, its speed drifts); the
   ratio uses the mean of the two.
2. Online: start the ``medner serve`` command (``medner.cli.serve.main``) in a subprocess
   on a free loopback port (waits for /healthz with a deadline), warm it up (32 requests),
   then ``--concurrency`` clients send ``--requests`` POST /v1/extract requests of one
   abstract each, cycling through the abstracts -> requests/s, p50/p99 latency, errors.
3. Stops the server and prints a JSON summary; exit code 1 if any request failed or the
   ratio online/offline is under ``--min-ratio``.

Bounded: the request count is fixed and the whole online phase is cut at ``--time-limit``
seconds (counted as a failure). Only 127.0.0.1 is ever contacted. The data file is read in
place, never copied.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from machine import describe  # benchmarks/machine.py, beside this script


def read_abstracts(path: Path, limit: int | None) -> list[str]:
    from medner.batch import iter_documents

    texts = []
    for doc in iter_documents(path, "pubtator"):
        texts.append(doc.text)
        if limit and len(texts) >= limit:
            break
    return texts


def offline_throughput(model_dir: Path, texts: list[str], batch: int, threads: int | None
                       ) -> dict:
    from medner.backends import load

    model = load(model_dir, threads=threads)
    model.extract(texts[:batch])  # warm-up
    started = time.perf_counter()
    spans = 0
    for i in range(0, len(texts), batch):
        spans += sum(len(d.spans) for d in model.extract(texts[i:i + batch]))
    seconds = time.perf_counter() - started
    del model
    gc.collect()
    return {"abstracts": len(texts), "seconds": round(seconds, 2),
            "abstracts_per_s": round(len(texts) / seconds, 2), "spans": spans, "batch": batch}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, deadline_s: float) -> None:
    import httpx

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before /healthz")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"no answer from {url}/healthz within {deadline_s} s")


async def run_load(url: str, texts: list[str], n_requests: int, concurrency: int,
                   time_limit: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(n_requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def worker() -> None:
            for i in counter:
                body = {"text": texts[i % len(texts)]}
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/extract", json=body)
                    if r.status_code != 200:
                        errors.append(f"{r.status_code}: {r.text[:200]}")
                        continue
                    r.json()["documents"][0]["spans"]
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        done, pending = await asyncio.wait(tasks, timeout=time_limit)
        for task in pending:
            task.cancel()
        seconds = time.perf_counter() - started
        health = (await client.get("/healthz")).json()
    if pending:
        errors.append(f"time limit of {time_limit} s reached; {len(pending)} clients cut")
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1) \
            if ordered else float("nan")

    return {"requests": n_requests, "ok": len(latencies), "errors": len(errors),
            "error_examples": errors[:5], "concurrency": concurrency,
            "seconds": round(seconds, 2),
            "requests_per_s": round(len(latencies) / seconds, 2) if seconds else 0.0,
            "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99),
                           "max": round(1000 * ordered[-1], 1) if ordered else None,
                           "mean": round(1000 * statistics.fmean(ordered), 1)
                           if ordered else None},
            "server_batching": health.get("batching")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path, help="BC5CDR PubTator file (read in place)")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--abstracts", type=int, default=500,
                        help="distinct abstracts used (offline set and request texts)")
    parser.add_argument("--offline-batch", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=32, help="server --max-batch")
    parser.add_argument("--threads", type=int, default=None, help="torch threads, both phases")
    parser.add_argument("--time-limit", type=float, default=900.0)
    parser.add_argument("--min-ratio", type=float, default=0.70)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be >= 1")

    texts = read_abstracts(args.data, args.abstracts)
    print(f"{len(texts)} abstracts, mean {statistics.fmean(map(len, texts)):.0f} characters",
          file=sys.stderr)
    before = offline_throughput(args.model, texts, args.offline_batch, args.threads)
    print(f"offline (before): {before}", file=sys.stderr)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-c", "from medner.cli.serve import main; main()", str(args.model),
           "--host", "127.0.0.1",
           "--port", str(port), "--max-batch", str(args.max_batch), "--log-level", "warning"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = {k: v for k, v in os.environ.items() if k != "MEDNER_API_KEY"}
    server = subprocess.Popen(cmd, env=env)
    try:
        wait_healthy(url, server, deadline_s=120)
        asyncio.run(run_load(url, texts, min(32, args.requests), args.concurrency, 120))  # warm
        online = asyncio.run(run_load(url, texts, args.requests, args.concurrency,
                                      args.time_limit))
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
    print(f"online: {online}", file=sys.stderr)
    after = offline_throughput(args.model, texts, args.offline_batch, args.threads)
    print(f"offline (after): {after}", file=sys.stderr)
    offline = {"before": before, "after": after, "abstracts_per_s": round(
        (before["abstracts_per_s"] + after["abstracts_per_s"]) / 2, 2)}
    ratio = online["requests_per_s"] / offline["abstracts_per_s"]
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": describe(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "offline": offline, "online": online, "ratio_online_to_offline": round(ratio, 3),
        "target_ratio": args.min_ratio,
        "passed": online["errors"] == 0 and ratio >= args.min_ratio,
    }
    print(json.dumps(summary, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
