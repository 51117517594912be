"""Benchmark concept linking: an index built from TRAIN annotations only, scored on DEV.

    python benchmarks/linking.py --train /work/shared/data/bc5cdr/CDR_TrainingSet.PubTator.txt \\
        --dev /work/shared/data/bc5cdr/CDR_DevelopmentSet.PubTator.txt \\
        --model /tmp/medner-bench/bc5cdr-baseline --json benchmarks/results/linking-bc5cdr.json
    python benchmarks/linking.py --train .../NCBItrainset_corpus.txt \
        --dev .../NCBIdevelopset_corpus.txt

Reports (1) with gold spans: ID accuracy per label for concepts seen and unseen in TRAIN, and
document-level concept F1; (2) with ``--model`` (a NER folder): document-level concept F1 on
its predicted spans, and abstracts/s of NER alone and of NER + linking in one run. The
embedding threshold is chosen on TRAIN alone (index on 80% of its documents, the rest scored
with gold spans); DEV is never used to choose anything. Refuses when the index holds DEV's
own annotations.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from machine import describe, emit  # benchmarks/machine.py, beside this script

os.environ.setdefault("HF_HUB_OFFLINE", "1")
THRESHOLDS = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.01)  # 1.01: string keys only


def without_ids(documents):
    return [d.with_spans([replace(s, ids=()) for s in d.spans]) for d in documents]


def id_accuracy(gold_docs, linked_docs, index, train_docs) -> dict:
    """Per label, gold mentions with IDs whose linked IDs equal the gold's, split by where
    their concepts are known: every gold ID annotated somewhere in TRAIN ("seen in TRAIN"),
    else every one in the index through a vocabulary ("vocabulary only"), else ("not in the
    index")."""
    in_train = {i for d in train_docs for s in d.spans for i in s.ids}
    counts: Counter = Counter()
    for gold, linked in zip(gold_docs, linked_docs, strict=True):
        for g, p in zip(gold.spans, linked.spans, strict=True):
            ids = {i for i in g.ids if i not in ("", "-1")}
            if ids:
                known = ("seen in TRAIN" if ids <= in_train else "vocabulary only"
                         if ids <= index.concepts.keys() else "not in the index")
                counts[(g.label, known, "n")] += 1
                counts[(g.label, known, "right")] += set(p.ids) == ids
    out = {}
    for label, known, _ in sorted({k for k in counts if k[2] == "n"}):
        n = counts[(label, known, "n")]
        out[f"{label}, {known}"] = {
            "mentions": n, "accuracy": round(100 * counts[(label, known, "right")] / n, 2)}
    return out


def concept_f1(gold, predicted, bootstrap: int = 1000) -> dict:
    from medner.scoring import evaluate

    report = evaluate(gold, predicted, bootstrap=bootstrap, seed=0)
    document = report.concepts["concept-document"]
    return {"micro": document.micro.to_dict(),
            "per_label": {k: v.to_dict() for k, v in document.per_label.items()},
            "mention_micro": report.concepts["concept-mention"].micro.to_dict()}


def choose_threshold(train, embedder, vocabulary) -> tuple[float, dict]:
    """The threshold with the best document-level concept F1 on a held-out fifth of TRAIN
    (index built from the other four fifths plus any vocabulary), with gold spans."""
    from medner.linking import Linker, build_index, names_from_corpus

    documents = list(train)
    random.Random(13).shuffle(documents)
    cut = int(0.8 * len(documents))
    part, held = documents[:cut], documents[cut:]
    index = build_index([*names_from_corpus(part), *vocabulary], embedder, sources=[])
    embedder.reuse(index)  # the full index holds these names again
    scores = {}
    for threshold in THRESHOLDS:
        linked = Linker(index, embedder, threshold=threshold).link(without_ids(held))
        scores[threshold] = round(100 * concept_f1(held, linked, bootstrap=0)["micro"]["f1"], 2)
    best = max(scores, key=lambda t: (scores[t], t))
    return best, scores


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True, help="annotated corpus: the index's names")
    parser.add_argument("--dev", required=True, help="annotated corpus to score on")
    parser.add_argument("--model", type=Path, help="a NER model folder: also score its spans")
    parser.add_argument("--threshold", type=float, help="skip choosing it on TRAIN")
    parser.add_argument("--tsv", action="append", default=[], help="also index this "
                        "vocabulary (id, name, synonyms, optional label), e.g. MeSH headings")
    parser.add_argument("--index", type=Path, help="a prebuilt index of TRAIN and the --tsv "
                        "vocabularies (`medner kb build TRAIN VOCAB.tsv`): used as the full "
                        "index, and its vectors spare embedding the names again")
    parser.add_argument("--vectors-from", type=Path, help="an index whose name vectors are "
                        "reused wherever the same names are indexed here (e.g. one built with "
                        "the same vocabulary and another corpus), sparing embedding them again")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from medner.io import read_corpus
    from medner.linking import ConceptIndex, Linker, build_index, names_from_corpus, read_tsv
    from medner.linking.embed import NameEmbedder

    train = read_corpus(args.train).documents
    dev = read_corpus(args.dev).documents
    vocabulary = [name for path in args.tsv for name in read_tsv(path)]
    prebuilt = ConceptIndex.load(args.index) if args.index else None
    donor = ConceptIndex.load(args.vectors_from) if args.vectors_from else prebuilt
    embedder = NameEmbedder(progress=True)
    if donor is not None:  # the TRAIN-fifth index and the full index share most names
        embedder.reuse(donor)
    threshold, tuning = (args.threshold, {}) if args.threshold else choose_threshold(
        train, embedder, vocabulary)
    print(f"threshold {threshold} (chosen on a held-out fifth of TRAIN: {tuning})",
          file=sys.stderr)
    start = time.perf_counter()
    index = prebuilt or build_index([*names_from_corpus(train), *vocabulary], embedder,
                                    sources=[], documents=train)
    build_seconds = None if prebuilt else round(time.perf_counter() - start, 1)
    if index.annotated_documents(dev):
        sys.exit(f"the index holds annotations of {len(index.annotated_documents(dev))} DEV "
                 "documents: refusing to score")
    linker = Linker(index, embedder, threshold=threshold)
    gold_linked = linker.link(without_ids(dev))
    result = {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": describe(),
              "command": " ".join(["python", *sys.argv]), "train": args.train, "dev": args.dev,
              "vocabularies": args.tsv,
              "threshold": threshold, "threshold_tuning_on_train": tuning,
              "index": {"names": len(index.entries), "concepts": len(index.concepts),
                        "prebuilt": str(args.index) if prebuilt else None,
                        "build_seconds": build_seconds},
              "gold_spans": {"id_accuracy": id_accuracy(dev, gold_linked, index, train),
                             "concepts": concept_f1(dev, gold_linked)}}
    if args.model:
        from medner.backends import load

        ner = load(args.model)
        ner.predict(dev[:8])  # warm-up
        start = time.perf_counter()
        predicted = ner.predict(dev)
        ner_seconds = time.perf_counter() - start
        start = time.perf_counter()
        linked = linker.link(predicted)
        link_seconds = time.perf_counter() - start
        result["predicted_spans"] = {
            "model": str(args.model), "concepts": concept_f1(dev, linked),
            "ner_docs_per_s": round(len(dev) / ner_seconds, 1),
            "ner_and_linking_docs_per_s": round(len(dev) / (ner_seconds + link_seconds), 1),
            "linking_seconds": round(link_seconds, 2)}
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
