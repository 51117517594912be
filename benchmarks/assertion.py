"""Assertion (present / absent / possible) on MACCROBAT's clinical4 findings. Reproduces the
assertion rows of docs/benchmarks.md.

    # train on the 80% part of the document split (seed 13, as the clinical4 NER rows), pick
    # the epoch on a held-out tenth of it, score dev and test on gold spans
    python benchmarks/assertion.py --data /work/shared/data/maccrobat/MACCROBAT2020 \
        --out /tmp/medner-bench/assertion --json benchmarks/results/assertion.json
    # also end to end, on the spans of a clinical4 NER model trained on the same split
    # (python benchmarks/encoder.py maccrobat-clinical4 ... --split-seed 13), and ConText's
    # answers on the same gold spans (benchmarks/context_baseline.py) beside the model's
    python benchmarks/assertion.py --data ... --model /tmp/medner-bench/assertion \
        --ner /tmp/medner-bench/maccrobat-clinical4 --context /tmp/context

``--gold-spans DIR`` writes the dev and test parts' clinical4 spans without their
assertions (``DIR/dev.jsonl``, ``DIR/test.jsonl``), the input of ``context_baseline.py``;
``--context DIR`` reads its answers from the same names. MACCROBAT's POLARITY NEG is ``absent``;
UNCERTAIN, MAYBE_POS and MAYBE_NEG are ``possible``; a finding without one is ``present``.
Prints JSON and writes it to ``--json``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from machine import describe, emit  # benchmarks/machine.py, beside this script

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RESAMPLES = 1000


def split(data: Path, seed: int):
    """(train, dev, test) clinical4 documents: the split ``medner train --split-seed`` makes."""
    from medner.io import read_corpus
    from medner.labels import SCHEMAS, apply_schema
    from medner.split import split_documents

    parts = split_documents(read_corpus(data).documents, (0.8, 0.1, 0.1), seed=seed)
    return [apply_schema(part, SCHEMAS["clinical4"])[0] for part in parts]


def without_assertions(documents):
    from dataclasses import replace

    return [d.with_spans(replace(s, attributes=()) for s in d.spans) for d in documents]


def value_scores(gold, predicted) -> dict:
    """Per value P/R/F1 on gold spans with bootstrap intervals (documents resampled), the
    macro-F1 over the values and the accuracy, each with its interval."""
    import numpy as np

    from medner.scoring.assertions import value_counts
    from medner.scoring.bootstrap import micro_prf, percentile_interval, resampled_totals
    from medner.scoring.pairing import pair_documents

    pairs = pair_documents(gold, predicted).pairs
    counts = [value_counts(g.spans, p.spans) for g, p in pairs]
    values = sorted({v for c in counts for v, _ in c}, key=lambda v: (v != "present", v))
    columns = np.array([[c[(v, k)] for v in values for k in range(3)] for c in counts])
    totals = np.vstack([columns.sum(axis=0), resampled_totals(columns, RESAMPLES, seed=0)])
    f1 = np.stack([micro_prf(*totals[:, 3 * j:3 * j + 3].T)[2] for j in range(len(values))])
    scores: dict = {}
    for j, value in enumerate(values):
        tp, fp, fn = (int(x) for x in totals[0, 3 * j:3 * j + 3])
        precision, recall, _ = (float(x[0]) for x in micro_prf(*totals[:1, 3 * j:3 * j + 3].T))
        scores[value] = {"precision": precision, "recall": recall, "f1": float(f1[j, 0]),
                         "f1_ci": percentile_interval(f1[j, 1:]), "tp": tp, "fp": fp, "fn": fn}
    macro = f1.mean(axis=0)
    correct = totals[:, 0::3].sum(axis=1)
    accuracy = correct / np.maximum(1, correct + totals[:, 1::3].sum(axis=1))
    return {"values": scores, "macro_f1": float(macro[0]),
            "macro_f1_ci": percentile_interval(macro[1:]), "accuracy": float(accuracy[0]),
            "accuracy_ci": percentile_interval(accuracy[1:]), "spans": int(correct[0] + totals[
                0, 1::3].sum())}


def end_to_end(ner_folder: Path, model, test) -> dict:
    """Strict F1 of the NER model's spans, and strict+assertion F1 once the classifier has
    marked them."""
    from medner.backends import load
    from medner.scoring import evaluate

    ner = load(ner_folder)
    predicted = model.predict(ner.predict(without_assertions(test)))
    report = evaluate(test, predicted, modes=("strict",), bootstrap=RESAMPLES)
    return {"ner": str(ner_folder), "strict": report.results["strict"].micro.to_dict(),
            "strict+assertion": report.assertions["strict+assertion"].micro.to_dict(),
            "assertion_on_matched_spans": report.assertions["assertion"].micro.to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the MACCROBAT2020 folder")
    parser.add_argument("--split-seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=Path("/tmp/medner-bench/assertion"))
    parser.add_argument("--model", type=Path, help="skip training: score this model folder")
    parser.add_argument("--ner", type=Path, help="a clinical4 NER folder trained on the same "
                        "split: also score end to end on its spans")
    parser.add_argument("--context", type=Path, help="a folder of ConText's answers on the "
                        "gold spans (dev.jsonl, test.jsonl from context_baseline.py): score "
                        "them beside")
    parser.add_argument("--gold-spans", type=Path, help="write the dev and test parts' gold "
                        "spans without assertions into this folder (JSONL) and stop")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="an AssertionConfig field for training (repeatable)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from overrides import parse_overrides  # benchmarks/overrides.py

    from medner.assertion import AssertionConfig, AssertionModel, train_assertion
    from medner.io import read_corpus, write_corpus

    train, dev, test = split(args.data, args.split_seed)
    if args.gold_spans:
        for name, part in (("dev", dev), ("test", test)):
            write_corpus(without_assertions(part), args.gold_spans / f"{name}.jsonl", "jsonl")
        print(f"{len(dev)} dev and {len(test)} test documents -> {args.gold_spans}")
        return
    started = time.perf_counter()
    if args.model:
        model = AssertionModel.load(args.model)
    else:
        config = AssertionConfig.from_dict(parse_overrides(args.set))
        model = train_assertion(train, out=args.out, config=config, progress=True)
    result = {"data": str(args.data), "split_seed": args.split_seed,
              "documents": {"train": len(train), "dev": len(dev), "test": len(test)},
              "model": model.path, "training": model.record,
              "seconds": round(time.perf_counter() - started, 1), "machine": describe()}
    for name, part in (("dev", dev), ("test", test)):
        result[f"gold_spans_{name}"] = value_scores(part, model.predict(without_assertions(part)))
        if args.context:
            answers = read_corpus(args.context / f"{name}.jsonl", "jsonl").documents
            result[f"context_gold_spans_{name}"] = value_scores(part, answers)
    if args.ner:
        result["end_to_end_test"] = end_to_end(args.ner, model, test)
    emit(result, args.json)


if __name__ == "__main__":
    main()
