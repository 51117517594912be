"""The rule-based baseline for assertion: medspaCy's ConText (default rules) on given spans.

medspaCy pins spaCy < 3.8 and with it numpy < 2, which the torch / transformers stack
medner installs cannot share, so ConText runs in a venv of its own and this script needs
only the standard library and medspaCy:

    python3.11 -m venv .venv-context
    .venv-context/bin/pip install -r benchmarks/requirements-context.txt
    # the dev and test parts' clinical4 gold spans, without assertions (medner's venv):
    python benchmarks/assertion.py --data .../MACCROBAT2020 --gold-spans /tmp/gold
    for part in dev test; do .venv-context/bin/python benchmarks/context_baseline.py \
        /tmp/gold/$part.jsonl /tmp/context/$part.jsonl; done
    # scored beside the learned classifier (medner's venv):
    python benchmarks/assertion.py --data ... --model /tmp/medner-bench/assertion \
        --context /tmp/context

Input and output are medner JSONL documents. Each span is given to ConText as a target in
the document's span group (spans may overlap, so not as ``doc.ents``), after PyRuSH's
sentence splitting. ConText's negated -> ``absent``; uncertain or hypothetical ->
``possible``; otherwise ``present``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

SPAN_GROUP = "medspacy_spans"


def load_pipeline():
    from loguru import logger  # PyRuSH logs every sentence at DEBUG level by default

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    import medspacy

    nlp = medspacy.load(medspacy_enable=["medspacy_pyrush"])
    nlp.add_pipe("medspacy_context", config={"input_span_type": "group",
                                             "span_group_name": SPAN_GROUP})
    return nlp


def assertion_of(target) -> str:
    if target._.is_negated:
        return "absent"
    if target._.is_uncertain or target._.is_hypothetical:
        return "possible"
    return "present"


def mark(nlp, record: dict, counts: dict) -> dict:
    """The record with each span's ``assertion`` attribute set by ConText."""
    doc = nlp.get_pipe("medspacy_pyrush")(nlp.make_doc(record["text"]))
    targets, owners = [], []
    for k, span in enumerate(record["spans"]):
        target = doc.char_span(span["start"], span["end"], span["label"],
                               alignment_mode="expand")
        if target is None:  # offsets inside whitespace only: nothing for ConText to read
            counts["spans ConText could not place (left present)"] += 1
            continue
        targets.append(target)
        owners.append(k)
    doc.spans[SPAN_GROUP] = targets
    doc = nlp.get_pipe("medspacy_context")(doc)
    spans = [dict(span, attributes={**span.get("attributes", {}), "assertion": "present"})
             for span in record["spans"]]
    for k, target in zip(owners, doc.spans[SPAN_GROUP], strict=True):
        spans[k]["attributes"]["assertion"] = assertion_of(target)
        counts[assertion_of(target)] += 1
    return dict(record, spans=spans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spans", type=Path, help="medner JSONL with the spans to classify")
    parser.add_argument("out", type=Path, help="where to write the JSONL with assertions")
    args = parser.parse_args()
    from collections import Counter

    import medspacy

    nlp = load_pipeline()
    counts: Counter = Counter()
    started = time.perf_counter()
    lines = args.spans.read_text(encoding="utf-8").splitlines()
    marked = [mark(nlp, json.loads(line), counts) for line in lines if line.strip()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_name(args.out.name + ".tmp")
    temporary.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in marked),
                         encoding="utf-8")
    temporary.replace(args.out)
    print(json.dumps({"documents": len(marked), "assertions": dict(counts),
                      "medspacy": medspacy.__version__,
                      "seconds": round(time.perf_counter() - started, 1)}, indent=2))


if __name__ == "__main__":
    main()
