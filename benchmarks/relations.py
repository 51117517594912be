"""Benchmark the document-level relation model: train on BC5CDR train, score CID on dev with
the gold entities and their gold concept IDs (the concept-id basis of ``medner.evaluate``),
report training time and prediction speed.

    nice -n 19 python benchmarks/relations.py \\
        --train /work/shared/data/bc5cdr/CDR_TrainingSet.PubTator.txt \\
        --dev /work/shared/data/bc5cdr/CDR_DevelopmentSet.PubTator.txt \\
        --out /tmp/medner-bench/cid

The decision threshold and the epoch are chosen on a held-out part of train, never on dev.
``--resume`` continues a run that was stopped (its checkpoint is beside ``--out``);
``--model`` scores an already trained folder. Results go to ``--results`` as JSON and are
printed as a Markdown block.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from machine import one_line  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def cpu_name() -> str:
    """``lscpu``'s model name (the CPU the numbers belong to)."""
    try:
        listing = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    names = [line.split(":", 1)[1].strip() for line in listing.splitlines()
             if line.startswith("Model name")]
    return names[0] if names else "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True, help="PubTator file with CID relations")
    parser.add_argument("--dev", required=True, help="PubTator file scored with its gold "
                        "entities and IDs")
    parser.add_argument("--out", default="/tmp/medner-bench/cid", help="model folder")
    parser.add_argument("--model", help="skip training: score this trained folder")
    parser.add_argument("--resume", action="store_true", help="continue a stopped run of --out")
    parser.add_argument("--epochs", type=int, help="override the config's epochs")
    parser.add_argument("--held-out", type=float, help="override the config's held_out "
                        "fraction (0: train on all of --train, keep the last epoch and "
                        "threshold 0.5)")
    parser.add_argument("--seed", type=int, help="override the config's seed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--base-model", help="encoder to fine-tune (default: the config's); "
                        "a NER model folder starts from its fine-tuned encoder")
    parser.add_argument("--hierarchy", help="a concept index with MeSH tree numbers (`medner "
                        "kb build` of MeSH XML or a TSV with tree numbers): keep each relation "
                        "at its most specific level, as the pipeline does with its linker")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--tag", default="", help="name suffix for this run's result file")
    args = parser.parse_args(argv)

    from medner import evaluate
    from medner.io import read_corpus
    from medner.linking import ConceptIndex
    from medner.relations import RelationConfig, RelationModel, train_relations

    started = datetime.now(UTC)
    if args.model:
        model_dir = Path(args.model)
    else:
        config = RelationConfig(threads=args.threads)
        if args.epochs:
            config = replace(config, epochs=args.epochs)
        if args.base_model:
            config = replace(config, base_model=args.base_model)
        if args.held_out is not None:
            config = replace(config, held_out=args.held_out)
        if args.seed is not None:
            config = replace(config, seed=args.seed)
        trained = train_relations(read_corpus(args.train).documents, out=args.out,
                                  config=config, resume=args.resume,
                                  log=lambda m: print(m, file=sys.stderr, flush=True))
        model_dir = Path(args.out)
    model = RelationModel.load(model_dir, threads=args.threads)
    record = model.record

    hierarchy = ConceptIndex.load(args.hierarchy) if args.hierarchy else None
    gold = read_corpus(args.dev).documents
    unlabelled = [replace(d, relations=()) for d in gold]
    model.score_pairs(unlabelled[:8])  # warm-up: the first call pays for lazy set-up
    begin = time.perf_counter()
    predicted = model.predict(unlabelled, hierarchy=hierarchy)
    seconds = time.perf_counter() - begin
    pairs = sum(len(model.candidates(d).pairs) for d in unlabelled)
    if not args.model:  # what was trained in memory predicts what the saved folder predicts
        same = trained.predict(unlabelled[:50], hierarchy=hierarchy) == predicted[:50]
    else:
        same = None
    report = evaluate(gold, predicted, modes=("strict",), bootstrap=1000, seed=0)
    relations = report.relations
    micro = relations.micro
    results = {
        "name": "bc5cdr-cid" + (f"-{args.tag}" if args.tag else ""),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": started.isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "machine": one_line(),
        "model": str(model_dir),
        "training_config": model.config.to_dict(),
        "train_seconds": record.get("train_seconds"),
        "best_epoch": record.get("best_epoch"),
        "held_out": record.get("held_out"),
        "threshold": model.threshold,
        "hierarchy": args.hierarchy,
        "dev": {"basis": relations.basis, **micro.to_dict()},
        "predict": {"documents": len(unlabelled), "candidate_pairs": pairs,
                    "relations": sum(len(d.relations) for d in predicted),
                    "seconds": round(seconds, 2),
                    "documents_per_s": round(len(unlabelled) / seconds, 1),
                    "pairs_per_s": round(pairs / seconds, 1)},
        "saved_equals_trained": same,
    }
    out_dir = Path(args.results)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{results['name']}.json").write_text(json.dumps(results, indent=2) + "\n")
    speed = results["predict"]
    ci = micro.f1_ci
    lines = [
        f"### {results['name']}", "", f"`{results['command']}`", "",
        f"{results['date']} on {results['cpu']} ({results['machine']})", "",
        f"Dev CID with gold entities and IDs ({relations.basis} basis): "
        f"P {100 * micro.precision:.1f}, R {100 * micro.recall:.1f}, "
        f"**F1 {100 * micro.f1:.1f}**" + (f" (95% CI {100 * ci[0]:.1f}-{100 * ci[1]:.1f})"
                                         if ci else "")
        + f"; tp {micro.tp}, fp {micro.fp}, fn {micro.fn}.", "",
        f"Training: {results['train_seconds']} s " + (
            f"(best epoch {results['best_epoch']} of {model.config.epochs}, threshold "
            f"{model.threshold:.3f} from held-out train F1 {100 * results['held_out']['f1']:.1f})."
            if results["held_out"] else
            f"(all of --train, last epoch of {model.config.epochs}, threshold "
            f"{model.threshold:.3f})."), "",
        f"Prediction: {speed['documents_per_s']} documents/s, {speed['pairs_per_s']} candidate "
        f"pairs/s ({speed['documents']} dev documents, {speed['candidate_pairs']} pairs, "
        f"{speed['relations']} relations predicted, {args.threads} threads).",
    ]
    if same is not None:
        lines += ["", f"Saved folder predicts as the trained model: {same}."]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
