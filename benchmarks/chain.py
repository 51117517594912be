"""Benchmark the whole chain from raw text: a NER folder, its linker and its relation model,
scored on BC5CDR dev as `medner evaluate MODEL --data DEV` scores it (entities, concept IDs,
CID relations on the concept-id basis), and its speed beside NER alone, in one run.

    python benchmarks/chain.py --ner /tmp/full/after/enc-model --linker /tmp/link/index \\
        --relations /tmp/medner-bench/cid \\
        --dev /work/shared/data/bc5cdr/CDR_DevelopmentSet.PubTator.txt \\
        --json benchmarks/results/chain-bc5cdr.json

The three folders are copied into one model folder (``linker/``, ``relations/``), the layout
`medner kb build ... --out MODEL` and a config's ``[link]``/``[relations]`` tables write. Also
scores the linker and relation model on gold entities (gold spans, IDs removed) so the loss
from predicted spans shows. Speeds: each path predicts all of DEV once after a warm-up, NER
alone first; abstracts/s and the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from machine import describe, emit  # benchmarks/machine.py, beside this script

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def timed(predict, documents) -> tuple[list, float]:
    predict(documents[:8])  # warm-up
    start = time.perf_counter()
    out = predict(documents)
    return out, time.perf_counter() - start


def summary(report) -> dict:
    out = {"entities_strict": report.micro("strict").to_dict()}
    out["concepts"] = {mode: r.micro.to_dict() | {"per_label": {k: v.to_dict() for k, v in
                                                                r.per_label.items()}}
                       for mode, r in report.concepts.items()}
    if report.relations is not None:
        out["relations"] = {"basis": report.relations.basis, **report.relations.micro.to_dict()}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ner", type=Path, required=True, help="NER model folder")
    parser.add_argument("--linker", type=Path, required=True, help="concept index folder")
    parser.add_argument("--relations", type=Path, required=True, help="relation model folder")
    parser.add_argument("--dev", required=True, help="gold corpus with IDs and relations")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from medner.backends import load
    from medner.io import read_corpus
    from medner.pipeline import LINKER_FOLDER, RELATIONS_FOLDER
    from medner.scoring import evaluate

    gold = read_corpus(args.dev).documents
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "chain"
        shutil.copytree(args.ner, folder)
        shutil.copytree(args.linker, folder / LINKER_FOLDER)
        shutil.copytree(args.relations, folder / RELATIONS_FOLDER)
        chain = load(folder)
        if chain.linker.index.annotated_documents(gold):
            sys.exit("the concept index holds annotations of DEV documents: refusing to score")
        ner_alone = chain.entities
        _, ner_seconds = timed(ner_alone.predict, gold)
        predicted, chain_seconds = timed(chain.predict, gold)
        end_to_end = evaluate(gold, predicted, bootstrap=1000, seed=0)
        gold_spans = [d.with_spans([replace(s, ids=()) for s in d.spans]) for d in gold]
        linked_gold = chain.relations.predict(chain.linker.link(gold_spans),
                                              hierarchy=chain.linker.index)
        on_gold_spans = evaluate(gold, linked_gold, bootstrap=1000, seed=0)
        on_gold_ids = evaluate(gold, chain.relations.predict(
            [replace(d, relations=()) for d in gold], hierarchy=chain.linker.index),
            bootstrap=1000, seed=0)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": describe(),
        "command": " ".join(["python", *sys.argv]), "dev": args.dev, "documents": len(gold),
        "end_to_end": summary(end_to_end),
        "gold_spans_linked": summary(on_gold_spans),
        "gold_spans_and_ids": summary(on_gold_ids),
        "speed": {"ner_docs_per_s": round(len(gold) / ner_seconds, 1),
                  "chain_docs_per_s": round(len(gold) / chain_seconds, 1),
                  "chain_over_ner": round(ner_seconds / chain_seconds, 3)}}
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
