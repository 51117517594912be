"""Batch extraction with a ``kill -9`` in the middle, then ``--resume``: no record lost or doubled.

    python benchmarks/batch_resume.py MODEL_DIR /path/to/CDR_DevelopmentSet.PubTator.txt \
        [--documents 10000] [--kill-at 0.5] [--work-dir /tmp/medner-batch-bench]

1. Writes a PubTator input of ``--documents`` documents into ``--work-dir`` (outside the
   repository): the dev abstracts repeated, each copy under a new id (``<pmid>-<copy>``).
2. Runs ``medner.batch.extract_to_file`` in a child process and sends it SIGKILL once the
   output holds ``--kill-at`` of the documents.
3. Runs it again with ``resume=True`` in a new child process until it finishes.
4. Checks the output: one JSON record per line, exactly the input ids, each once; prints a
   JSON summary (docs/s of both runs, records at the kill, torn bytes, resident memory
   sampled every ~2 s against the records written: flat means it does not grow with them).

Bounded: every child has ``--time-limit`` seconds; exit code 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from machine import describe  # benchmarks/machine.py, beside this script


def make_input(source: Path, target: Path, n: int) -> list[str]:
    """``n`` PubTator documents cycling through ``source``'s, ids made unique; returns ids."""
    blocks = [b for b in source.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    ids = []
    with target.open("w", encoding="utf-8", newline="") as out:
        for i in range(n):
            block = blocks[i % len(blocks)].strip("\n")
            copy = i // len(blocks)
            pmid = block.split("|", 1)[0]
            new_id = f"{pmid}-{copy}"
            lines = []
            for line in block.split("\n"):
                rest = line[len(pmid):]
                lines.append(new_id + rest)
            out.write("\n".join(lines) + "\n\n")
            ids.append(new_id)
    return ids


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def rss_mb(pid: int) -> float | None:
    """Resident memory of a running process (Linux), or ``None``."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def watch(proc: subprocess.Popen, output: Path, time_limit: float, stop_at: int | None,
          samples: list[tuple[int, float]]) -> bool:
    """Poll ``proc`` until it ends (or, with ``stop_at``, SIGKILL it once that many records
    are on disk); records (records written, RSS MB) every ~2 s. Returns True if killed."""
    started = time.monotonic()
    last_sample = 0.0
    while time.monotonic() - started < time_limit:
        if proc.poll() is not None:
            return False
        records = count_lines(output)
        now = time.monotonic()
        if now - last_sample >= 2:
            rss = rss_mb(proc.pid)
            if rss is not None:
                samples.append((records, round(rss, 1)))
            last_sample = now
        if stop_at is not None and records >= stop_at:
            os.kill(proc.pid, signal.SIGKILL)
            return True
        time.sleep(0.05)
    proc.kill()
    raise TimeoutError(f"the extraction did not finish within {time_limit} s")


def rss_profile(samples: list[tuple[int, float]]) -> dict:
    """(records, RSS) at the start, a quarter, half, three quarters and the end of the run,
    counting from the first batch this run wrote (before it: loading the model)."""
    if not samples:
        return {}
    warm = [s for s in samples if s[0] > samples[0][0]] or samples
    pick = [warm[int(f * (len(warm) - 1))] for f in (0.0, 0.25, 0.5, 0.75, 1.0)]
    return {"records_vs_rss_mb": pick, "max_rss_mb": max(r for _, r in warm)}


def worker(model: Path, data: Path, output: Path, resume: bool, batch_size: int,
           threads: int | None, fp32: bool) -> None:
    from medner.backends import load
    from medner.batch import extract_to_file

    loaded = load(model, threads=threads, bf16=False if fp32 else None)
    result = extract_to_file(loaded, [data], output, resume=resume,
                             batch_size=batch_size, progress=False)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"documents": result.documents, "extracted": result.extracted,
                      "skipped": result.skipped, "torn_lines": result.torn_lines,
                      "seconds": round(result.seconds, 2),
                      "docs_per_s": round(result.docs_per_second, 2),
                      "peak_rss_mb": round(peak_kb / 1024, 1), "notes": result.notes}))


def child(args: argparse.Namespace, data: Path, output: Path, resume: bool) -> list[str]:
    cmd = [sys.executable, __file__, "--worker", str(args.model), str(data), str(output),
           "--batch-size", str(args.batch_size)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if resume:
        cmd.append("--resume")
    if args.fp32:
        cmd.append("--fp32")
    return cmd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--kill-at", type=float, default=0.5,
                        help="fraction of documents written before the SIGKILL")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/medner-batch-bench"))
    parser.add_argument("--time-limit", type=float, default=3600.0)
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--fp32", action="store_true",
                        help="no bf16 autocast (the default where the CPU supports bf16)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.worker:
        worker(args.model, args.data, Path(rest[0]), args.resume, args.batch_size, args.threads,
               args.fp32)
        return 0

    args.work_dir.mkdir(parents=True, exist_ok=True)
    data = args.work_dir / "input.pubtator"
    output = args.work_dir / "output.jsonl"
    output.unlink(missing_ok=True)
    ids = make_input(args.data, data, args.documents)
    kill_at = int(args.documents * args.kill_at)

    # Run 1: killed with SIGKILL once kill_at records are on disk.
    started = time.monotonic()
    first_samples: list[tuple[int, float]] = []
    proc = subprocess.Popen(child(args, data, output, resume=False), stdout=subprocess.PIPE)
    try:
        killed = watch(proc, output, args.time_limit, kill_at, first_samples)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
        proc.stdout.close()
    first_seconds = time.monotonic() - started
    size = output.stat().st_size if output.exists() else 0
    raw = output.read_bytes() if output.exists() else b""
    complete_at_kill = raw.count(b"\n")
    torn_bytes = len(raw) - (raw.rfind(b"\n") + 1)
    del raw

    # Run 2: resume to the end.
    started = time.monotonic()
    second_samples: list[tuple[int, float]] = []
    proc2 = subprocess.Popen(child(args, data, output, resume=True), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        watch(proc2, output, args.time_limit, None, second_samples)
        out, err = proc2.communicate(timeout=60)
    finally:
        if proc2.poll() is None:
            proc2.kill()
            proc2.communicate(timeout=60)
    second_seconds = time.monotonic() - started
    resumed = json.loads(out.strip().splitlines()[-1]) if proc2.returncode == 0 else {
        "error": err[-2000:]}

    # Checks: every line a record, exactly the input ids, each once.
    seen: Counter[str] = Counter()
    bad_lines = 0
    with output.open("rb") as handle:
        for line in handle:
            try:
                seen[json.loads(line)["id"]] += 1
            except (json.JSONDecodeError, KeyError, TypeError):
                bad_lines += 1
    doubled = sorted(k for k, v in seen.items() if v > 1)
    missing = sorted(set(ids) - set(seen))
    unknown = sorted(set(seen) - set(ids))
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": describe(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "documents": args.documents,
        "first_run": {"killed": killed, "signal": "SIGKILL", "returncode": proc.returncode,
                      "records_at_kill": complete_at_kill, "torn_bytes_at_kill": torn_bytes,
                      "bytes_at_kill": size, "seconds": round(first_seconds, 1),
                      "docs_per_s": round(complete_at_kill / first_seconds, 2)
                      if first_seconds else None, "memory": rss_profile(first_samples)},
        "resume_run": {**resumed, "wall_seconds": round(second_seconds, 1),
                       "memory": rss_profile(second_samples)},
        "output": {"records": sum(seen.values()), "distinct_ids": len(seen),
                   "bad_lines": bad_lines, "doubled": doubled[:5], "missing": missing[:5],
                   "unknown": unknown[:5]},
    }
    summary["passed"] = (killed and proc2.returncode == 0 and bad_lines == 0 and not doubled
                         and not missing and not unknown
                         and sum(seen.values()) == args.documents)
    print(json.dumps(summary, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
