"""Does domain-adaptive pretraining help? Reproduces the pretraining rows of docs/benchmarks.md.

    # MLM-adapt minilm-l6 on every local medical text except BC5CDR dev, fine-tune it on
    # BC5CDR with configs/bc5cdr.toml, and compare with the plain minilm-l6 model (paired
    # bootstrap CI of the dev F1 difference); the baseline folder is trained first with
    #   python benchmarks/encoder.py bc5cdr --train .../CDR_TrainingSet.PubTator.txt \
    #       --dev .../CDR_DevelopmentSet.PubTator.txt --out /tmp/medner-bench/bc5cdr-baseline
    python benchmarks/pretrain.py mlm --data /work/shared/data \
        --baseline /tmp/medner-bench/bc5cdr-baseline --max-steps 100
    # CLM-adapt smollm2-135m on BC5CDR train abstracts; perplexity before/after on held-out
    # abstracts
    python benchmarks/pretrain.py clm --data /work/shared/data --max-steps 200

Text sources (read in place, never copied into the repository): BC5CDR train, NCBI-disease
train and dev, the MACCROBAT reports, the ADE corpus sentences (grouped by PMID into one
document each, so exclusion by PMID works) and the tutorial's instruction records. BC5CDR
dev is always excluded (by PMID, by normalised text, and where one text holds the other whole,
as ``medner data check-leak`` finds them). Prints JSON and writes it to
``--json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from machine import emit  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def ade_documents(folder: Path):
    """The ADE corpus' sentences as one Document per PMID (its files are not a corpus format:
    ``PMID NEG sentence`` lines and ``PMID|sentence|...`` relation lines)."""
    from medner.document import Document

    sentences: dict[str, list[str]] = defaultdict(list)
    for line in (folder / "ADE-NEG.txt").read_text(encoding="utf-8").splitlines():
        pmid, _, rest = line.partition(" NEG ")
        if rest.strip():
            sentences[pmid.strip()].append(rest.strip())
    for name in ("DRUG-AE.rel", "DRUG-DOSE.rel"):
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            fields = line.split("|")
            if len(fields) > 1 and fields[1] not in sentences[fields[0]]:
                sentences[fields[0]].append(fields[1])
    return [Document(pmid, " ".join(texts)) for pmid, texts in sentences.items()]


def text_files(data: Path, scratch: Path) -> list[str]:
    from medner.io import write_corpus

    ade = scratch / "ade.jsonl"
    write_corpus(ade_documents(data / "ade_corpus_v2"), ade, "jsonl")
    return [str(data / "bc5cdr" / "CDR_TrainingSet.PubTator.txt"),
            str(data / "ncbi_disease" / "NCBItrainset_corpus.txt"),
            str(data / "ncbi_disease" / "NCBIdevelopset_corpus.txt"),
            str(data / "maccrobat" / "MACCROBAT2020"),
            str(ade),
            str(data / "seed_both_rel_instruct" / "train.jsonl")]


def cmd_mlm(args) -> dict:
    from medner.backends.encoder import load_config
    from medner.backends.encoder.model import EncoderModel
    from medner.backends.encoder.train import train
    from medner.core.data import load_data
    from medner.pretrain import PretrainConfig, pretrain
    from medner.scoring import compare

    dev = args.data / "bc5cdr" / "CDR_DevelopmentSet.PubTator.txt"
    with tempfile.TemporaryDirectory() as scratch:
        texts = text_files(args.data, Path(scratch))
        adapted = pretrain(PretrainConfig(
            objective="mlm", texts=tuple(texts), base_model="minilm-l6", out=str(args.out),
            exclude=(str(dev),), block_size=128, epochs=args.epochs, max_steps=args.max_steps,
            batch_size=32, learning_rate=args.learning_rate, seed=13),
            log=lambda m: print(m, file=sys.stderr))
    config = load_config(ROOT / "configs" / "bc5cdr.toml", {
        "train": str(args.data / "bc5cdr" / "CDR_TrainingSet.PubTator.txt"), "dev": str(dev),
        "base_model": str(adapted.path), "out": f"{args.out}-bc5cdr"})
    tuned = train(config, log=lambda m: print(m, file=sys.stderr), progress=True)
    gold = load_data(config, log=lambda m: None).dev
    with_dapt = EncoderModel.load(tuned.path).predict(gold)
    baseline = EncoderModel.load(args.baseline).predict(gold)
    report = compare(gold, baseline, with_dapt, bootstrap=1000, seed=0,
                     names=("minilm-l6", "minilm-l6 + MLM adaptation"))
    return {"objective": "mlm", "pretrain": {k: adapted.meta[k] for k in (
                "texts", "exclusion", "steps", "perplexity_before", "perplexity_after",
                "train_seconds")},
            "finetune_seconds": tuned.meta["train_seconds"],
            "comparison": report.to_dict()}


def cmd_clm(args) -> dict:
    from medner.pretrain import PretrainConfig, pretrain

    dev = args.data / "bc5cdr" / "CDR_DevelopmentSet.PubTator.txt"
    result = pretrain(PretrainConfig(
        objective="clm", texts=(str(args.data / "bc5cdr" / "CDR_TrainingSet.PubTator.txt"),),
        base_model="smollm2-135m", out=str(args.out), exclude=(str(dev),), block_size=256,
        held_out=0.1, epochs=args.epochs, max_steps=args.max_steps, batch_size=4,
        learning_rate=args.learning_rate, seed=13), log=lambda m: print(m, file=sys.stderr))
    return {"objective": "clm", **{k: result.meta[k] for k in (
        "texts", "exclusion", "steps", "perplexity_before", "perplexity_after", "train_seconds",
        "peak_rss_mb")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("mlm", "clm"):
        p = sub.add_parser(name)
        p.add_argument("--data", type=Path, required=True, help="the shared data folder")
        p.add_argument("--out", type=Path, default=Path(f"/tmp/medner-bench/{name}-adapted"))
        p.add_argument("--epochs", type=float, default=1.0)
        p.add_argument("--max-steps", type=int, default=None)
        p.add_argument("--learning-rate", type=float, default=5e-5 if name == "mlm" else 1e-4)
        p.add_argument("--json", type=Path, default=None)
        if name == "mlm":
            p.add_argument("--baseline", type=Path, required=True,
                           help="a BC5CDR encoder folder trained from plain minilm-l6")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = cmd_mlm(args) if args.command == "mlm" else cmd_clm(args)
    result["command"] = " ".join(["python", "benchmarks/pretrain.py", *(argv or sys.argv[1:])])
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
