"""Write unannotated PubMed text as medner JSONL, for a teacher model to label
(self-training experiments in docs/benchmarks.md).

    python benchmarks/unlabelled_text.py --ade /work/shared/data/ade_corpus_v2 \
        --exclude /work/shared/data/bc5cdr/CDR_TrainingSet.PubTator.txt \
        --exclude /work/shared/data/bc5cdr/CDR_DevelopmentSet.PubTator.txt --out ade.jsonl

``--ade`` reads the ADE corpus v2 folder (DRUG-AE.rel, DRUG-DOSE.rel, ADE-NEG.txt): its
sentences, grouped by PMID into one document each, in text order where the relation files
give offsets. ``--pubtator`` takes any PubTator corpus and keeps only its text. Every PMID
of an ``--exclude`` corpus is left out, so no dev abstract's text reaches training; check the
result with ``medner data check-leak OUT DEV``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

UNKNOWN_OFFSET = 10**9  # ADE-NEG sentences carry no offset: after the located ones


def ade_documents(folder: Path) -> dict[str, str]:
    sentences: dict[str, dict[str, int]] = defaultdict(dict)
    for name in ("DRUG-AE.rel", "DRUG-DOSE.rel"):
        for lineno, line in enumerate((folder / name).read_text(encoding="utf-8").splitlines(), 1):
            fields = line.split("|")
            if len(fields) < 4 or not fields[3].isdigit():
                raise SystemExit(f"{folder / name}:{lineno}: expected PMID|sentence|..|start|.. "
                                 "with a number as the fourth field")
            sentences[fields[0]].setdefault(fields[1], int(fields[3]))
    negative = folder / "ADE-NEG.txt"
    for lineno, line in enumerate(negative.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split(" ", 2)
        if len(parts) < 3:
            raise SystemExit(f"{negative}:{lineno}: expected 'PMID NEG sentence'")
        sentences[parts[0]].setdefault(parts[2], UNKNOWN_OFFSET)
    return {pmid: " ".join(s for s, _ in sorted(found.items(), key=lambda item: item[1]))
            for pmid, found in sentences.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ade", type=Path, help="ADE corpus v2 folder")
    parser.add_argument("--pubtator", type=Path, action="append", default=[],
                        help="a PubTator corpus whose text to keep (repeatable)")
    parser.add_argument("--exclude", type=Path, action="append", default=[],
                        help="leave out every document id of this corpus (repeatable)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from medner.document import Document
    from medner.io import read_corpus, write_corpus

    excluded = {d.id for path in args.exclude for d in read_corpus(path).documents}
    texts: dict[str, str] = {}
    for path in args.pubtator:
        texts.update({f"{path.stem}-{d.id}": d.text for d in read_corpus(path, "pubtator").documents
                      if d.id not in excluded})
    if args.ade:
        texts.update({f"ade-{pmid}": text for pmid, text in ade_documents(args.ade).items()
                      if pmid not in excluded})
    if not texts:
        raise SystemExit("no text: give --ade or --pubtator")
    write_corpus([Document(id_, text, ()) for id_, text in texts.items()], args.out, "jsonl")
    print(json.dumps({"documents": len(texts), "excluded_ids": len(excluded),
                      "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
