"""Encoder extraction speed and strict micro F1: torch (bf16 weights, fp32 weights under bf16
autocast, or fp32) vs ONNX Runtime fp32 and int8, on the same documents. The ONNX variants
need ``medner export-onnx MODEL`` first (with int8).

    medner export-onnx runs/bc5cdr
    python benchmarks/onnx_speed.py runs/bc5cdr \
        /work/shared/data/bc5cdr/CDR_DevelopmentSet.PubTator.txt --documents 500
    # torch only, at another batch size (windows per forward pass)
    python benchmarks/onnx_speed.py runs/bc5cdr CDR_DevelopmentSet.PubTator.txt \
        --documents 500 --variants torch-bf16,torch-autocast --batch-size 64

Prints one JSON object: per runtime, documents/s (best of ``--repeats`` after a warm-up) and
F1, and how many documents got different spans from torch's.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from machine import describe  # benchmarks/machine.py, beside this script

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_variant(model_dir: Path, variant: str, threads: int, batch_size: int | None):
    """The model under one runtime: "torch-bf16" (weights cast to bf16 at load, the default
    on bf16 CPUs), "torch-autocast" (fp32 weights, bf16 autocast: the default before
    2026-12-02), "torch-fp32", "onnx-fp32" or "onnx-int8"."""
    from medner.backends.encoder.model import EncoderModel
    from medner.backends.encoder.onnx import FP32_FILE, INT8_FILE, ONNX_FOLDER, new_session

    if variant.startswith("torch-"):
        model = EncoderModel.load(model_dir, bf16=variant == "torch-bf16", threads=threads,
                                  batch_size=batch_size)
        model.bf16 = variant != "torch-fp32"  # autocast over the fp32 weights
        return model
    model = EncoderModel.load(model_dir, threads=threads, runtime="onnx", batch_size=batch_size)
    file = model_dir / ONNX_FOLDER / (FP32_FILE if variant == "onnx-fp32" else INT8_FILE)
    if model.model.file != file:  # the runtime prefers int8; the benchmark picks the file
        model.model.session = new_session(file, threads)
        model.model.file = file
    return model


def measure(model, docs, gold, repeats: int) -> tuple[dict, list]:
    from medner.scoring import score_spans

    model.predict(docs[:4])  # warm-up: first-call allocations and kernel choice
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predicted = model.predict(docs)
        best = min(best, time.perf_counter() - start)
    micro = score_spans(gold, predicted)["micro"]
    return {"seconds": round(best, 2), "docs_per_s": round(len(docs) / best, 1),
            "f1": round(micro["f1"], 4), "tp": micro["tp"], "fp": micro["fp"],
            "fn": micro["fn"]}, predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("pubtator", type=Path)
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--variants", default=None, help="comma-separated; default: "
                        "torch-bf16 (torch-fp32 without native bf16),onnx-fp32,onnx-int8")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="windows per forward pass (default: the model folder's)")
    args = parser.parse_args()

    from medner.io import read_corpus
    from medner.labels import apply_schema

    docs = read_corpus(args.pubtator).documents[:args.documents]
    results: dict = {"machine": describe(), "model": str(args.model), "documents": len(docs),
                     "threads": args.threads, "batch_size": args.batch_size}
    reference = None
    from medner.core.device import cpu_supports_bf16

    torch_variant = "torch-bf16" if cpu_supports_bf16() else "torch-fp32"
    variants = args.variants or f"{torch_variant},onnx-fp32,onnx-int8"
    for variant in variants.split(","):
        model = load_variant(args.model, variant, args.threads, args.batch_size)
        gold, _ = apply_schema(docs, model.schema)
        result, predicted = measure(model, docs, gold, args.repeats)
        spans = [[(s.start, s.end, s.label) for s in d.spans] for d in predicted]
        if reference is None:
            reference = spans
        result["docs_differing_from_first"] = sum(a != b for a, b in zip(reference, spans,
                                                                         strict=True))
        results[variant] = result
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
