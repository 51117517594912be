"""Decode with a LoRA training checkpoint (``OUT.train/checkpoint-N``) on a BC5CDR dev sample:
seconds, abstracts/s, strict F1 and the raw answers, with constrained decoding, the loop stop
after 3 lines and abbreviations, as the shipped LLM recipe predicts.

A checkpoint has no ``medner.json``, so ``benchmarks/llm.py generate`` cannot load it; this
script is for timing decoding code on a partly trained model when a full run does not fit.
Run it from two checkouts to compare their decoding on the same answers:

    python benchmarks/llm_checkpoint_decode.py runs/llm.train/checkpoint-21 \
        --data CDR_DevelopmentSet.PubTator.txt --sample 40 --batch-size 8 --out new.json
    PYTHONPATH=/path/to/other/checkout/src python benchmarks/llm_checkpoint_decode.py ...

``--profile`` also prints the functions that took the most time (cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data", required=True)
    parser.add_argument("--sample", type=int, default=40)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--base-model", default="smollm2-135m")
    parser.add_argument("--out", required=True, help="Write the result JSON here.")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if not (Path(args.checkpoint) / "adapter_config.json").is_file():
        raise SystemExit(f"{args.checkpoint}: not a LoRA checkpoint (no adapter_config.json)")

    import torch
    from transformers import AutoTokenizer

    import medner
    from medner.backends.llm.model import LLMModel, load_adapter_merged, prepare_tokenizer
    from medner.backends.llm.train import dev_sample
    from medner.errors import MednerError
    from medner.io import read_corpus
    from medner.labels import apply_schema, get_schema
    from medner.scoring import evaluate

    schema = get_schema("bc5cdr")
    try:  # the data first: a bad path fails before the model takes its time to load
        gold, _ = apply_schema(read_corpus(args.data).documents, schema)
    except MednerError as exc:
        raise SystemExit(f"error: {exc}") from None
    model = load_adapter_merged(Path(args.checkpoint), args.base_model).to(torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    prepare_tokenizer(tokenizer)
    meta = {"template": "entities-lines", "schema": schema.to_dict(),
            "inference": {"max_new_tokens": 256, "batch_size": args.batch_size,
                          "constrained": True, "repeat_patience": 3, "abbreviations": True}}
    predictor = LLMModel(model, tokenizer, meta, bf16=True)
    sample = dev_sample(gold, args.sample, args.seed)
    predictor.predict([d for d in gold if d not in sample][:2])  # warm the vocabulary caches
    profiler = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    predicted = predictor.predict(sample)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    report = evaluate(sample, predicted, modes=("strict",), bootstrap=0,
                      notes=predictor.last_notes)
    stats = predictor.last_stats
    result = {"code": medner.__file__, "checkpoint": args.checkpoint, "documents": len(sample),
              "batch_size": args.batch_size, "threads": torch.get_num_threads(),
              "seconds": round(seconds, 2),
              "abstracts_per_second": round(len(sample) / seconds, 3),
              "strict": report.results["strict"].micro.to_dict(),
              "notes": predictor.last_notes, "generation": stats.to_dict(),
              "answers": predictor.last_answers}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("code", "seconds", "abstracts_per_second")}),
          f"strict F1 {100 * result['strict']['f1']:.2f}")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
