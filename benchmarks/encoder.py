"""Benchmark the encoder backend: train, select on dev, report strict P/R/F1 per type,
training wall time and extraction throughput. Reproduces the encoder rows of
docs/benchmarks.md.

    python benchmarks/encoder.py bc5cdr \
        --train /work/shared/data/bc5cdr/CDR_TrainingSet.PubTator.txt \
        --dev /work/shared/data/bc5cdr/CDR_DevelopmentSet.PubTator.txt
    python benchmarks/encoder.py ncbi-disease \
        --train /work/shared/data/ncbi_disease/NCBItrainset_corpus.txt \
        --dev /work/shared/data/ncbi_disease/NCBIdevelopset_corpus.txt
    python benchmarks/encoder.py maccrobat-clinical4 \
        --train /work/shared/data/maccrobat/MACCROBAT2020 --split-seed 13

MACCROBAT has no official split: ``--split-seed`` makes a document-level 80/10/10 split;
the 10% test part is scored too (``--test`` is ignored then). Results go to
``--results`` as JSON (one file per run) and are printed as a Markdown block.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from machine import one_line  # benchmarks/machine.py, beside this script
from overrides import parse_overrides

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def throughput(model, docs, batch_size: int, repeats: int = 1) -> dict:
    """Documents/s and tokens/s of ``model.predict`` on ``docs`` (after one warm-up batch)."""
    from medner.backends.encoder.align import tokenize_documents

    n_tokens = sum(len(t.input_ids) for t in tokenize_documents(model.tokenizer,
                                                                [d.text for d in docs]))
    model.batch_size = batch_size
    model.predict(docs[:8])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(docs)
        best = min(best, time.perf_counter() - start)
    return {"documents": len(docs), "tokens": n_tokens, "seconds": round(best, 2),
            "docs_per_s": round(len(docs) / best, 1), "tokens_per_s": round(n_tokens / best),
            "batch_size": batch_size, "bf16": model.bf16, "window": model.max_length}


def score(gold, pred) -> dict:
    from medner.scoring import score_spans

    out = {}
    for mode in ("strict",):
        s = score_spans(gold, pred, mode=mode)
        out[mode] = {"micro": s["micro"], "per_label": s["per_label"]}
    return out


def table(scores: dict) -> list[str]:
    rows = ["| type | P | R | F1 | gold |", "| --- | ---: | ---: | ---: | ---: |"]
    for label, m in sorted(scores["per_label"].items()):
        rows.append(f"| {label} | {100 * m['precision']:.1f} | {100 * m['recall']:.1f} | "
                    f"{100 * m['f1']:.1f} | {m['tp'] + m['fn']} |")
    mi = scores["micro"]
    rows.append(f"| **micro** | {100 * mi['precision']:.1f} | {100 * mi['recall']:.1f} | "
                f"**{100 * mi['f1']:.1f}** | {mi['tp'] + mi['fn']} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="config name in configs/ (bc5cdr, ncbi-disease, "
                        "maccrobat-clinical4) or a path to a TOML config")
    parser.add_argument("--train", required=True)
    parser.add_argument("--dev")
    parser.add_argument("--test", help="also score this held-out file (never used to select)")
    parser.add_argument("--split-seed", type=int, help="80/10/10 document split of --train")
    parser.add_argument("--out", help="model folder (default: /tmp/medner-bench/<name>)")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--batch-size", type=int, default=16, help="windows per forward pass "
                        "in the throughput measurement")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field (TOML value, else a bare string), repeatable")
    parser.add_argument("--tag", default="", help="name suffix for this run's result file")
    parser.add_argument("--model", help="skip training: benchmark this trained model folder")
    args = parser.parse_args(argv)

    import torch

    from medner.backends.encoder import load_config
    from medner.backends.encoder.model import EncoderModel
    from medner.backends.encoder.train import train
    from medner.core.data import load_data
    from medner.io import read_corpus
    from medner.labels import apply_schema

    torch.set_num_threads(args.threads)
    config_path = Path(args.dataset)
    if not config_path.is_file():
        config_path = ROOT / "configs" / f"{args.dataset}.toml"
    name = config_path.stem + (f"-{args.tag}" if args.tag else "")
    overrides: dict = {"train": args.train, "dev": args.dev, "split_seed": args.split_seed,
                       "threads": args.threads,
                       "out": args.out or f"/tmp/medner-bench/{name}"}
    overrides.update(parse_overrides(args.set))
    if args.dev:
        overrides["split_seed"] = None
    config = load_config(config_path, overrides)

    started = datetime.now(UTC)
    if args.model:
        model_dir = Path(args.model)
        meta = json.loads((model_dir / "medner.json").read_text())
        train_seconds = meta.get("train_seconds")
        if meta.get("ensemble"):  # all members' training, one after the other
            train_seconds = sum(s["train_seconds"] for s in meta["ensemble"]["sources"])
    else:
        result = train(config, log=lambda m: print(m, file=sys.stderr), progress=True)
        model_dir, meta, train_seconds = result.path, result.meta, result.meta["train_seconds"]
    model = EncoderModel.load(model_dir, threads=args.threads)

    data = load_data(config, log=lambda m: None)
    dev_pred = model.predict(data.dev)
    results = {
        "name": name,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": started.isoformat(timespec="seconds"),
        "machine": one_line(),
        "config": config.to_dict(),
        "train_seconds": train_seconds,
        "epochs_run": meta.get("epochs_run"),
        "best_step": meta.get("best_step"),
        "alignment": meta.get("alignment"),
        "dev": score(data.dev, dev_pred)["strict"],
        "throughput": throughput(model, data.dev, args.batch_size),
    }
    test_docs = None
    if config.split_seed is not None and not config.dev:
        ids = set(data.info["split"]["test_ids"])
        full = read_corpus(config.train, config.format, on_mismatch=config.on_mismatch).documents
        test_docs, _ = apply_schema([d for d in full if d.id in ids], data.schema)
    elif args.test:
        test_docs, _ = apply_schema(read_corpus(args.test, config.format).documents,
                                    data.schema)
    if test_docs:
        results["test"] = score(test_docs, model.predict(test_docs))["strict"]

    out_dir = Path(args.results)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    tp = results["throughput"]
    lines = [f"### {name}", "", f"`{results['command']}`", "",
             f"{results['date']} on {results['machine']}", "",
             f"Training: {train_seconds:.0f} s wall ({results['epochs_run']} epochs, best step "
             f"{results['best_step']}). Dev (strict):", "", *table(results["dev"]), "",
             f"Extraction: {tp['docs_per_s']} documents/s, {tp['tokens_per_s']} tokens/s "
             f"({tp['documents']} dev documents, {tp['tokens']} tokens, batch {tp['batch_size']}"
             f" windows of {tp['window']} tokens, bf16 {tp['bf16']}, {args.threads} threads)."]
    if "test" in results:
        lines += ["", "Test (strict):", "", *table(results["test"])]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
