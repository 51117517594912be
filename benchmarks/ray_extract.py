"""Ray Data extraction (`--engine ray`, local mode) against local batch extraction, then a
killed Ray job and its `--resume`: same spans, no record lost or doubled.

    python benchmarks/ray_extract.py MODEL_DIR /path/to/CDR_DevelopmentSet.PubTator.txt \
        [--documents 10000] [--num-actors 2] [--cpus-per-actor 1] [--shard-size 500] \
        [--kill-at 0.5] [--work-dir /tmp/medner-ray-bench] [--json-out FILE]

1. Writes a PubTator input of ``--documents`` documents into ``--work-dir`` (the dev
   abstracts repeated under new ids, as ``benchmarks/batch_resume.py`` does).
2. Local: ``medner.batch.extract_to_file`` in this process (model loaded once, not timed).
3. Ray: ``ray.init(num_cpus=2, object_store_memory=512 MB, include_dashboard=False)``, then
   ``medner.distributed.extract_with_ray``, timed whole: the actors' start and model loads
   are part of what the engine costs. Compares docs/s and every document's spans with step 2.
4. Failure: ``medner extract --engine ray`` in a child process (its own local cluster),
   SIGKILLed with its process group once ``--kill-at`` of the shards are on disk; then the
   same command with ``--resume``. Checks the records: exactly the input ids, each once.

Prints a JSON summary; exit code 1 if a check fails. Bounded by ``--time-limit`` per child.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from batch_resume import make_input  # the same input as the local resume benchmark
from machine import describe  # benchmarks/machine.py, beside this script

NUM_CPUS = 2
OBJECT_STORE_BYTES = 512 * 1024**2


def spans_by_id(docs) -> dict[str, list[tuple[int, int, str]]]:
    return {d.id: [(s.start, s.end, s.label) for s in d.spans] for d in docs}


def run_local(model_dir: Path, data: Path, output: Path, threads: int | None) -> dict:
    from medner.backends import load
    from medner.batch import extract_to_file, iter_journal

    model = load(model_dir, threads=threads)
    result = extract_to_file(model, [data], output, progress=False)
    return {"documents": result.documents, "seconds": round(result.seconds, 2),
            "docs_per_s": round(result.docs_per_second, 2),
            "spans": spans_by_id(iter_journal(output))}


def run_ray(model_dir: Path, data: Path, folder: Path, args: argparse.Namespace) -> dict:
    import ray

    from medner.distributed import extract_with_ray, iter_shard_documents

    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    ray.init(num_cpus=NUM_CPUS, object_store_memory=OBJECT_STORE_BYTES,
             include_dashboard=False)
    init_seconds = time.perf_counter() - started
    try:
        result = extract_with_ray(model_dir, [data], folder, shard_size=args.shard_size,
                                  ray_batch_size=args.ray_batch_size,
                                  num_actors=args.num_actors,
                                  cpus_per_actor=args.cpus_per_actor, progress=False)
    finally:
        ray.shutdown()
    return {"documents": result.documents, "shards": result.shards,
            "ray_init_seconds": round(init_seconds, 2), "seconds": round(result.seconds, 2),
            "docs_per_s": round(result.docs_per_second, 2),
            "spans": spans_by_id(iter_shard_documents(folder))}


def ray_command(args: argparse.Namespace, data: Path, folder: Path, resume: bool) -> list[str]:
    medner = shutil.which("medner", path=str(Path(sys.executable).parent)) or "medner"
    command = [medner, "extract", str(args.model), "--input", str(data), "--output",
               str(folder), "--engine", "ray", "--shard-size", str(args.shard_size),
               "--ray-batch-size", str(args.ray_batch_size), "--cpus-per-actor",
               str(args.cpus_per_actor)]
    if args.num_actors:
        command += ["--num-actors", str(args.num_actors)]
    return command + (["--resume"] if resume else [])


def shards_on_disk(folder: Path) -> int:
    return len(list(folder.glob("part-*.jsonl"))) if folder.exists() else 0


def kill_and_resume(args: argparse.Namespace, data: Path, folder: Path, ids: list[str]) -> dict:
    from medner.distributed import iter_shard_documents

    shutil.rmtree(folder, ignore_errors=True)
    total_shards = -(-args.documents // args.shard_size)
    kill_at = max(1, int(total_shards * args.kill_at))
    # A new session: the SIGKILL reaches the driver and the Ray processes it started.
    proc = subprocess.Popen(ray_command(args, data, folder, resume=False),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    started = time.monotonic()
    killed = False
    while time.monotonic() - started < args.time_limit and proc.poll() is None:
        if shards_on_disk(folder) >= kill_at:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.1)
    if proc.poll() is None and not killed:
        os.killpg(proc.pid, signal.SIGKILL)
        raise TimeoutError(f"the first Ray run did not finish within {args.time_limit} s")
    proc.wait(timeout=60)
    at_kill = shards_on_disk(folder)

    started = time.monotonic()
    resumed = subprocess.run(ray_command(args, data, folder, resume=True), capture_output=True,
                             text=True, timeout=args.time_limit)
    seconds = time.monotonic() - started
    if resumed.returncode != 0:
        return {"killed": killed, "shards_at_kill": at_kill, "error": resumed.stderr[-2000:]}
    counts = Counter(d.id for d in iter_shard_documents(folder))
    return {"killed": killed, "shards_at_kill": at_kill, "shards": total_shards,
            "resume_seconds": round(seconds, 2), "records": sum(counts.values()),
            "duplicates": sum(n - 1 for n in counts.values() if n > 1),
            "missing": len(set(ids) - set(counts)), "resume_summary": resumed.stderr.strip()
            .splitlines()[-1:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--num-actors", type=int, default=None,
                        help="default: as many as the 2 CPUs allow (--cpus-per-actor)")
    parser.add_argument("--cpus-per-actor", type=float, default=1.0)
    parser.add_argument("--ray-batch-size", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=None, help="local run's torch threads")
    parser.add_argument("--kill-at", type=float, default=0.5,
                        help="fraction of shards on disk before the SIGKILL")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/medner-ray-bench"))
    parser.add_argument("--time-limit", type=float, default=3600.0)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)

    args.work_dir.mkdir(parents=True, exist_ok=True)
    data = args.work_dir / "input.pubtator"
    ids = make_input(args.data, data, args.documents)

    local = run_local(args.model, data, args.work_dir / "local.jsonl", args.threads)
    ray_run = run_ray(args.model, data, args.work_dir / "ray", args)
    local_spans, ray_spans = local.pop("spans"), ray_run.pop("spans")
    differing = [i for i in local_spans if ray_spans.get(i) != local_spans[i]]
    failure = kill_and_resume(args, data, args.work_dir / "ray-killed", ids)

    checks = {
        "ray_records_equal_documents": len(ray_spans) == args.documents,
        "same_spans_every_document": not differing and set(ray_spans) == set(local_spans),
        "resume_no_loss_no_duplicates": failure.get("records") == args.documents
        and failure.get("duplicates") == 0 and failure.get("missing") == 0,
    }
    summary = {
        "benchmark": "ray_extract", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": describe(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "documents": args.documents, "local": local, "ray": ray_run,
        "ray_over_local_throughput": round(ray_run["docs_per_s"] / local["docs_per_s"], 3)
        if local["docs_per_s"] else None,
        "documents_with_different_spans": len(differing), "failure": failure,
        "checks": checks,
    }
    text = json.dumps(summary, indent=1)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n", encoding="utf-8")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
